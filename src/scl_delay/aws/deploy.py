"""Ship a trained model: gate -> Model -> EndpointConfig -> endpoint (create or blue/green update) ->
auto scaling -> API Gateway (POST /predict straight to InvokeEndpoint, API key + usage plan) -> live.json.

Every step looks before it writes, and names are deterministic (endpoint + commit + hash of the inputs),
so a second run with the same inputs changes nothing. Everything created is tagged
``scl-delay:managed-by=deploy.py`` and ``scl-delay:deployment=<endpoint>``; teardown deletes only that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import ClientError, WaiterError

from ..errors import InputError
from . import live_record, names

VARIANT = "AllTraffic"
MANAGER = "deploy.py"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
PREDICT_PATH = "predict"
# SageMaker answers a container 4xx/5xx with 424 ModelError {"OriginalStatusCode", "OriginalMessage", ...}:
# hand the container's own body back with its own status (400, 406, 413, 415; a container 5xx becomes 502).
# Any other 4xx from SageMaker (endpoint missing, access denied) is our configuration, not the caller's: 500.
# Throttling stays 429; SageMaker 5xx become 502.
MODEL_ERROR_TEMPLATE = (
    "#set($original = $input.path('$.OriginalStatusCode'))\n"
    "#if($original >= 500)#set($context.responseOverride.status = 502)"
    "#elseif($original >= 400)#set($context.responseOverride.status = $original)#end\n"
    "$input.path('$.OriginalMessage')"
)
INTEGRATION_RESPONSES = (
    ("200", None, None),
    ("400", "424", {"application/json": MODEL_ERROR_TEMPLATE}),
    ("429", "429", None),
    (
        "500",
        "40\\d|41\\d|42[0-35-8]|4[3-9]\\d",
        {
            "application/json": '{"error": {"code": "gateway_error", '
            '"message": "the model endpoint rejected the call"}}'
        },
    ),
    (
        "502",
        "5\\d{2}",
        {
            "application/json": '{"error": {"code": "model_unavailable", '
            '"message": "the model endpoint failed"}}'
        },
    ),
)
BLUE_GREEN_WAIT_S = 300  # baking period: alarms watched before the old fleet goes
BLUE_GREEN_TERMINATION_S = 120
BLUE_GREEN_TIMEOUT_S = 3600


@dataclass(frozen=True)
class DeploySpec:
    region: str
    endpoint_name: str
    state_s3: str
    training_job: str | None = None
    commit: str | None = None
    role_arn: str | None = None
    apigw_role_arn: str | None = None
    image_uri: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations: float = 100.0
    gate_metric: str = "test:pr_auc"
    tolerance: float = 0.01
    force: bool = False
    rollback_alarms: tuple[str, ...] = ()
    api_name: str = "scl-delay"
    stage: str = "prod"
    rate_limit: float = 20.0
    burst_limit: int = 40
    wait_delay_s: int = 30
    wait_max_attempts: int = 60


class GateRefusedError(Exception):
    """The challenger is worse than the live model beyond the tolerance."""


class RollbackError(Exception):
    """The endpoint did not end InService on the new config (failed, or rolled back by an alarm)."""


def check_spec(spec: DeploySpec) -> None:
    problems = []
    for value, what in ((spec.endpoint_name, "--endpoint-name"), (spec.training_job, "--training-job")):
        if value:
            try:
                names.check_name(value, what)
            except InputError as e:
                problems.append(str(e))
    try:
        names.parse_s3_uri(spec.state_s3, "--state-s3")
    except InputError as e:
        problems.append(str(e))
    for value, what in ((spec.role_arn, "--role-arn"), (spec.apigw_role_arn, "--apigw-role-arn")):
        if value and not value.startswith("arn:"):
            problems.append(
                f"{what} must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {value!r}"
            )
    if not 1 <= spec.min_capacity <= spec.max_capacity:
        problems.append(
            f"need 1 <= --min-capacity <= --max-capacity, got {spec.min_capacity}..{spec.max_capacity}"
        )
    if not spec.min_capacity <= spec.instance_count <= spec.max_capacity:
        problems.append(
            f"--instance-count {spec.instance_count} is outside {spec.min_capacity}..{spec.max_capacity}"
        )
    if spec.tolerance < 0 or spec.target_invocations <= 0 or spec.rate_limit <= 0 or spec.burst_limit < 1:
        problems.append(
            "--tolerance must be >= 0; --target-invocations, --rate-limit, --burst-limit positive"
        )
    if names.slug(spec.stage) != spec.stage:
        problems.append(f"--stage must be lower-case letters, digits and hyphens, got {spec.stage!r}")
    if problems:
        raise InputError("; ".join(problems))


def _code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def _not_found(e: ClientError) -> bool:
    message = e.response.get("Error", {}).get("Message", "")
    return _code(e) in ("NotFoundException", "ResourceNotFoundException", "ObjectNotFoundException") or (
        _code(e) == "ValidationException" and "Could not find" in message
    )


def _tags(spec: DeploySpec, **extra: str | None) -> dict[str, str]:
    return names.tag_map({names.TAG_MANAGED_BY: MANAGER, names.TAG_DEPLOYMENT: spec.endpoint_name, **extra})


def _ours(tags: Mapping[str, str], endpoint: str) -> bool:
    return tags.get(names.TAG_MANAGED_BY) == MANAGER and tags.get(names.TAG_DEPLOYMENT) == endpoint


def _sm_tags(sm, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn).get("Tags", [])}


# ------------------------------------------------------------------------------------------ which model, and gate


def resolve_training_job(clients, spec: DeploySpec) -> dict:
    """The training job to deploy, with its metrics: named, or recorded by training_job.py for the commit."""
    record = None
    name = spec.training_job
    if not name:
        uri = live_record.training_record_uri(spec.state_s3, spec.commit or "")
        record = live_record.read_json(clients.s3, uri)
        if record is None:
            raise InputError(
                f"no training job is recorded for commit {spec.commit} ({uri}); pass --training-job"
            )
        name = record["job_name"]
    try:
        desc = clients.sagemaker.describe_training_job(TrainingJobName=name)
    except ClientError as e:
        if _not_found(e):
            raise InputError(f"training job {name} does not exist") from None
        raise
    if desc["TrainingJobStatus"] != "Completed":
        raise InputError(
            f"training job {name} is {desc['TrainingJobStatus']}, not Completed: nothing to deploy"
        )
    metrics = dict((record or {}).get("final_metrics") or {})
    if not metrics:
        wanted = {d["Name"] for d in desc["AlgorithmSpecification"].get("MetricDefinitions", [])}
        metrics = {
            m["MetricName"]: float(m["Value"])
            for m in desc.get("FinalMetricDataList", [])
            if m["MetricName"] in wanted
        }
    if spec.gate_metric not in metrics:
        from ..metric_lines import metric_values
        from .training_job import read_model_artifact

        files = read_model_artifact(clients.s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
        if "metrics.json" in files:
            metrics = {**metric_values(json.loads(files["metrics.json"])), **metrics}
    commit = (record or {}).get("commit") or desc.get("Environment", {}).get("SCL_DELAY_GIT_COMMIT")
    if not commit:
        commit = (
            _sm_tags(clients.sagemaker, desc["TrainingJobArn"]).get(names.TAG_COMMIT)
            or spec.commit
            or "unknown"
        )
    return {
        "job_name": name,
        "model_data_url": desc["ModelArtifacts"]["S3ModelArtifacts"],
        "image": desc["AlgorithmSpecification"]["TrainingImage"],
        "metrics": metrics,
        "commit": commit,
        "hyperparameters": desc.get("HyperParameters", {}),
    }


def gate(challenger: Mapping, live: Mapping | None, spec: DeploySpec, say: Callable[[str], None]) -> None:
    """Champion/challenger: refuse when the challenger's gate metric is below live - tolerance."""
    if not live or live.get("training_job") == challenger["job_name"]:
        say("gate: no other model is live" if not live else "gate: this model is already live")
        return
    metric = spec.gate_metric
    new, old = challenger["metrics"].get(metric), live.get("metrics", {}).get(metric)
    if new is None or old is None:
        message = (
            f"cannot compare {metric}: challenger {new!r}, live {old!r} "
            f"(known metrics: {', '.join(sorted(challenger['metrics'])) or 'none'})"
        )
    elif new >= old - spec.tolerance:
        say(f"gate: {metric} {new:.4f} vs live {old:.4f} (tolerance {spec.tolerance}): accepted")
        return
    else:
        message = (
            f"{metric} {new:.4f} is worse than the live model's {old:.4f} "
            f"({live.get('training_job')}) by more than the tolerance {spec.tolerance}"
        )
    if spec.force:
        say(f"gate: {message}; deploying anyway (--force)")
        return
    raise GateRefusedError(f"{message}; pass --force to deploy anyway")


# ----------------------------------------------------------------------------------------------- SageMaker


def ensure_model(sm, spec: DeploySpec, name: str, job: Mapping, image: str, actions: list[str]) -> None:
    try:
        sm.describe_model(ModelName=name)
        return
    except ClientError as e:
        if not _not_found(e):
            raise
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=spec.role_arn,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": job["model_data_url"],
            "Environment": {"SCL_DELAY_TRAINING_JOB": job["job_name"]},
        },
        Tags=names.tags(
            _tags(spec, **{names.TAG_COMMIT: job["commit"], names.TAG_TRAINING_JOB: job["job_name"]})
        ),
    )
    actions.append(f"created model {name}")


def ensure_endpoint_config(
    sm, spec: DeploySpec, name: str, model: str, job: Mapping, actions: list[str]
) -> None:
    try:
        sm.describe_endpoint_config(EndpointConfigName=name)
        return
    except ClientError as e:
        if not _not_found(e):
            raise
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": model,
                "InitialInstanceCount": spec.instance_count,
                "InstanceType": spec.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        Tags=names.tags(
            _tags(spec, **{names.TAG_COMMIT: job["commit"], names.TAG_TRAINING_JOB: job["job_name"]})
        ),
    )
    actions.append(f"created endpoint config {name}")


def deployment_config(spec: DeploySpec) -> dict:
    """Blue/green, all at once after a baking period; alarms (if any) roll it back automatically."""
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "ALL_AT_ONCE",
                "WaitIntervalInSeconds": BLUE_GREEN_WAIT_S,
            },
            "TerminationWaitInSeconds": BLUE_GREEN_TERMINATION_S,
            "MaximumExecutionTimeoutInSeconds": BLUE_GREEN_TIMEOUT_S,
        }
    }
    if spec.rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in spec.rollback_alarms]}
    return config


def _describe_endpoint(sm, name: str) -> dict | None:
    try:
        return sm.describe_endpoint(EndpointName=name)
    except ClientError as e:
        if _not_found(e):
            return None
        raise


def _wait_in_service(sm, spec: DeploySpec, say: Callable[[str], None]) -> dict:
    say(f"waiting for endpoint {spec.endpoint_name} to be InService")
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=spec.endpoint_name,
            WaiterConfig={"Delay": spec.wait_delay_s, "MaxAttempts": spec.wait_max_attempts},
        )
    except WaiterError:
        desc = _describe_endpoint(sm, spec.endpoint_name) or {}
        raise RollbackError(
            f"endpoint {spec.endpoint_name} is {desc.get('EndpointStatus', 'gone')}: "
            f"{desc.get('FailureReason', 'no FailureReason')}"
        ) from None
    return sm.describe_endpoint(EndpointName=spec.endpoint_name)


def ensure_endpoint(clients, spec: DeploySpec, config: str, actions: list[str], say) -> dict:
    sm = clients.sagemaker
    current = _describe_endpoint(sm, spec.endpoint_name)
    if current is None:
        sm.create_endpoint(
            EndpointName=spec.endpoint_name, EndpointConfigName=config, Tags=names.tags(_tags(spec))
        )
        actions.append(f"created endpoint {spec.endpoint_name}")
    else:
        if not _ours(_sm_tags(sm, current["EndpointArn"]), spec.endpoint_name):
            raise InputError(
                f"endpoint {spec.endpoint_name} exists but was not created by deploy.py "
                f"(tag {names.TAG_MANAGED_BY} missing): refusing to take it over"
            )
        if current["EndpointStatus"] in ("Creating", "Updating", "SystemUpdating", "RollingBack"):
            current = _wait_in_service(sm, spec, say)
        if current["EndpointStatus"] == "Failed":
            raise RollbackError(
                f"endpoint {spec.endpoint_name} is Failed ({current.get('FailureReason')}); "
                f"delete it (deploy.py --teardown) and deploy again"
            )
        if current["EndpointConfigName"] == config:
            return current
        _release_scaling_if_instance_type_changes(clients, spec, current["EndpointConfigName"], actions)
        sm.update_endpoint(
            EndpointName=spec.endpoint_name,
            EndpointConfigName=config,
            DeploymentConfig=deployment_config(spec),
        )
        actions.append(f"updated endpoint {spec.endpoint_name} to {config} (blue/green)")
    final = _wait_in_service(sm, spec, say)
    if final["EndpointConfigName"] != config:  # the waiter succeeds after an automatic rollback too
        raise RollbackError(
            f"endpoint {spec.endpoint_name} is InService on {final['EndpointConfigName']}, "
            f"not {config}: the update was rolled back"
        )
    return final


def _release_scaling_if_instance_type_changes(clients, spec: DeploySpec, old_config: str, actions) -> None:
    """Application Auto Scaling fails an update that changes a scaled variant's instance type."""
    try:
        old = clients.sagemaker.describe_endpoint_config(EndpointConfigName=old_config)["ProductionVariants"][
            0
        ]
    except ClientError:
        return
    if old.get("InstanceType") == spec.instance_type:
        return
    rid = _resource_id(spec)
    if clients.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[rid], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]:
        clients.autoscaling.deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
        )
        actions.append(f"deregistered scaling for {rid} (instance type changes)")


def _resource_id(spec: DeploySpec) -> str:
    return f"endpoint/{spec.endpoint_name}/variant/{VARIANT}"


def _policy_name(spec: DeploySpec) -> str:
    return f"{spec.endpoint_name}-invocations-per-instance"


def ensure_autoscaling(aas, spec: DeploySpec, actions: list[str]) -> dict:
    rid = _resource_id(spec)
    targets = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[rid], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]
    if not targets or (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) != (
        spec.min_capacity,
        spec.max_capacity,
    ):
        aas.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=spec.min_capacity,
            MaxCapacity=spec.max_capacity,
        )
        actions.append(f"registered scaling {rid} {spec.min_capacity}..{spec.max_capacity}")
    want = {
        "TargetValue": float(spec.target_invocations),
        "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
        "ScaleInCooldown": 300,
        "ScaleOutCooldown": 60,
    }
    policies = aas.describe_scaling_policies(
        ServiceNamespace="sagemaker",
        ResourceId=rid,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyNames=[_policy_name(spec)],
    )["ScalingPolicies"]
    have = policies[0].get("TargetTrackingScalingPolicyConfiguration", {}) if policies else None
    if have is None or any(have.get(k) != v for k, v in want.items()):
        aas.put_scaling_policy(
            PolicyName=_policy_name(spec),
            ServiceNamespace="sagemaker",
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=want,
        )
        actions.append(
            f"put target-tracking policy {_policy_name(spec)} ({spec.target_invocations:g}/instance/min)"
        )
    return {
        "resource_id": rid,
        "min": spec.min_capacity,
        "max": spec.max_capacity,
        "policy": _policy_name(spec),
        "target_invocations": spec.target_invocations,
    }


# ----------------------------------------------------------------------------------------------- API Gateway


def integration_uri(region: str, endpoint: str) -> str:
    return f"arn:aws:apigateway:{region}:runtime.sagemaker:path/endpoints/{endpoint}/invocations"


def invoke_url(api_id: str, region: str, stage: str) -> str:
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}/{PREDICT_PATH}"


def _paged(call, key: str, **kwargs) -> list[dict]:
    items, position = [], None
    while True:
        page = call(**kwargs, **({"position": position} if position else {}))
        items += page.get(key, page.get("items", []))
        position = page.get("position")
        if not position:
            return items


def _find_owned(items: list[dict], name: str, spec: DeploySpec, what: str) -> dict | None:
    found = [i for i in items if i.get("name") == name]
    if not found:
        return None
    ours = [i for i in found if _ours(i.get("tags", {}), spec.endpoint_name)]
    if not ours:
        raise InputError(
            f"{what} {name!r} exists but was not created by deploy.py for "
            f"{spec.endpoint_name}: refusing to change it (use another --api-name)"
        )
    return ours[0]


def ensure_gateway(gw, spec: DeploySpec, actions: list[str]) -> dict:
    changed_before = len(actions)
    api = _find_owned(_paged(gw.get_rest_apis, "items", limit=500), spec.api_name, spec, "REST API")
    if api is None:
        api = gw.create_rest_api(
            name=spec.api_name,
            description=f"scl-delay predictions ({spec.endpoint_name})",
            endpointConfiguration={"types": ["REGIONAL"]},
            tags=_tags(spec),
        )
        actions.append(f"created REST API {spec.api_name} ({api['id']})")
    api_id = api["id"]
    resources = _paged(gw.get_resources, "items", restApiId=api_id, limit=500)
    root = next(r for r in resources if r["path"] == "/")
    predict = next((r for r in resources if r["path"] == f"/{PREDICT_PATH}"), None)
    if predict is None:
        predict = gw.create_resource(restApiId=api_id, parentId=root["id"], pathPart=PREDICT_PATH)
        actions.append(f"created resource /{PREDICT_PATH}")
    rid = predict["id"]
    _ensure_method(gw, spec, api_id, rid, actions)
    stage = None
    try:
        stage = gw.get_stage(restApiId=api_id, stageName=spec.stage)
    except ClientError as e:
        if not _not_found(e):
            raise
    if stage is None or len(actions) > changed_before:
        gw.create_deployment(
            restApiId=api_id,
            stageName=spec.stage,
            description=f"POST /{PREDICT_PATH} -> SageMaker endpoint {spec.endpoint_name}",
        )
        actions.append(f"deployed stage {spec.stage}")
    key = _ensure_api_key(gw, spec, actions)
    plan = _ensure_usage_plan(gw, spec, api_id, key["id"], actions)
    return {
        "api_id": api_id,
        "resource_id": rid,
        "stage": spec.stage,
        "api_key_id": key["id"],
        "usage_plan_id": plan["id"],
        "invoke_url": invoke_url(api_id, spec.region, spec.stage),
    }


def _ensure_method(gw, spec: DeploySpec, api_id: str, rid: str, actions: list[str]) -> None:
    try:
        method = gw.get_method(restApiId=api_id, resourceId=rid, httpMethod="POST")
    except ClientError as e:
        if not _not_found(e):
            raise
        gw.put_method(
            restApiId=api_id,
            resourceId=rid,
            httpMethod="POST",
            authorizationType="NONE",
            apiKeyRequired=True,
            requestParameters={
                "method.request.header.Content-Type": False,
                "method.request.header.Accept": False,
            },
        )
        actions.append("created POST method (API key required)")
        method = gw.get_method(restApiId=api_id, resourceId=rid, httpMethod="POST")
    integration = method.get("methodIntegration") or {}
    want = {
        "type": "AWS",
        "httpMethod": "POST",
        "uri": integration_uri(spec.region, spec.endpoint_name),
        "credentials": spec.apigw_role_arn,
    }
    if any(integration.get(k) != v for k, v in want.items()):
        gw.put_integration(
            restApiId=api_id,
            resourceId=rid,
            httpMethod="POST",
            type="AWS",
            integrationHttpMethod="POST",
            uri=want["uri"],
            credentials=spec.apigw_role_arn,
            passthroughBehavior="WHEN_NO_MATCH",
            timeoutInMillis=29000,
            requestParameters={
                "integration.request.header.Content-Type": "method.request.header.Content-Type",
                "integration.request.header.Accept": "method.request.header.Accept",
            },
        )
        actions.append(f"integrated POST /{PREDICT_PATH} with InvokeEndpoint on {spec.endpoint_name}")
        integration = {}
    method_responses = method.get("methodResponses") or {}
    existing = integration.get("integrationResponses") or {}
    for status, pattern, templates in INTEGRATION_RESPONSES:
        if status not in method_responses:
            gw.put_method_response(
                restApiId=api_id,
                resourceId=rid,
                httpMethod="POST",
                statusCode=status,
                responseModels={"application/json": "Empty"},
            )
        have = existing.get(status) or {}
        if have.get("selectionPattern") != pattern or (have.get("responseTemplates") or None) != templates:
            kwargs: dict[str, object] = {"selectionPattern": pattern} if pattern else {}
            if templates:
                kwargs["responseTemplates"] = templates
            gw.put_integration_response(
                restApiId=api_id, resourceId=rid, httpMethod="POST", statusCode=status, **kwargs
            )
            actions.append(f"mapped integration response {pattern or 'default'} -> {status}")


def _ensure_api_key(gw, spec: DeploySpec, actions: list[str]) -> dict:
    name = f"{spec.api_name}-key"
    key = _find_owned(_paged(gw.get_api_keys, "items", nameQuery=name, limit=500), name, spec, "API key")
    if key is None:
        key = gw.create_api_key(
            name=name, enabled=True, tags=_tags(spec), description=f"caller key for {spec.api_name}"
        )
        actions.append(f"created API key {name} ({key['id']})")
    return key


def _ensure_usage_plan(gw, spec: DeploySpec, api_id: str, key_id: str, actions: list[str]) -> dict:
    name = f"{spec.api_name}-plan"
    plan = _find_owned(_paged(gw.get_usage_plans, "items", limit=500), name, spec, "usage plan")
    throttle = {"rateLimit": float(spec.rate_limit), "burstLimit": int(spec.burst_limit)}
    if plan is None:
        plan = gw.create_usage_plan(
            name=name,
            apiStages=[{"apiId": api_id, "stage": spec.stage}],
            throttle=throttle,
            tags=_tags(spec),
            description=f"throttling for {spec.api_name}",
        )
        actions.append(f"created usage plan {name} ({spec.rate_limit:g} req/s, burst {spec.burst_limit})")
    else:
        have = plan.get("throttle") or {}
        ops = [
            {"op": "replace", "path": f"/throttle/{k}", "value": str(v)}
            for k, v in throttle.items()
            if float(have.get(k, -1)) != float(v)
        ]
        if not any(
            s.get("apiId") == api_id and s.get("stage") == spec.stage for s in plan.get("apiStages", [])
        ):
            ops.append({"op": "add", "path": "/apiStages", "value": f"{api_id}:{spec.stage}"})
        if ops:
            plan = gw.update_usage_plan(usagePlanId=plan["id"], patchOperations=ops)
            actions.append(f"updated usage plan {name}")
    keys = _paged(gw.get_usage_plan_keys, "items", usagePlanId=plan["id"], limit=500)
    if not any(k["id"] == key_id for k in keys):
        gw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key_id, keyType="API_KEY")
        actions.append(f"attached API key to usage plan {name}")
    return plan


# ----------------------------------------------------------------------------------------------- deploy


def deploy(
    clients, spec: DeploySpec, say: Callable[[str], None] = print, outcome: dict | None = None
) -> dict:
    """Returns (and fills ``outcome`` as it goes, so a failure still reports what it knew) the result."""
    outcome = {} if outcome is None else outcome
    live = live_record.read_live(clients.s3, spec.state_s3)
    outcome.update(
        endpoint_name=spec.endpoint_name,
        previous_training_job=(live or {}).get("training_job"),
        live_record=live_record.live_uri(spec.state_s3),
    )
    job = resolve_training_job(clients, spec)
    outcome["training_job"] = job["job_name"]
    say(f"deploying training job {job['job_name']} (commit {job['commit']}) to endpoint {spec.endpoint_name}")
    gate(job, live, spec, say)
    image = spec.image_uri or job["image"]
    version = names.versioned_name(
        spec.endpoint_name,
        job["commit"],
        job["job_name"],
        image,
        spec.instance_type,
        str(spec.instance_count),
        spec.role_arn or "",
    )
    actions: list[str] = []
    sm = clients.sagemaker
    ensure_model(sm, spec, version, job, image, actions)
    ensure_endpoint_config(sm, spec, version, version, job, actions)
    endpoint = ensure_endpoint(clients, spec, version, actions, say)
    if live and live.get("endpoint_name") == spec.endpoint_name and live.get("endpoint_config") != version:
        _delete_version(sm, spec, live.get("endpoint_config"), live.get("model_name"), actions)
    scaling = ensure_autoscaling(clients.autoscaling, spec, actions)
    api = ensure_gateway(clients.apigateway, spec, actions)
    record = {
        "endpoint_name": spec.endpoint_name,
        "endpoint_arn": endpoint["EndpointArn"],
        "endpoint_config": version,
        "model_name": version,
        "training_job": job["job_name"],
        "commit": job["commit"],
        "image": image,
        "model_data_url": job["model_data_url"],
        "metrics": job["metrics"],
        "hyperparameters": job["hyperparameters"],
        "instance_type": spec.instance_type,
        "instance_count": spec.instance_count,
        "autoscaling": scaling,
        "api": api,
        "region": spec.region,
    }
    previous = {k: v for k, v in (live or {}).items() if k != "deployed_at"}
    if actions or previous != record:
        record["deployed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        live_record.write_json(clients.s3, live_record.live_uri(spec.state_s3), record)
        actions.append(f"recorded {live_record.live_uri(spec.state_s3)}")
    for action in actions:
        say(f"  {action}")
    if not actions:
        say("no changes: everything is already as requested")
    outcome.update(
        invoke_url=api["invoke_url"],
        api_id=api["api_id"],
        api_key_id=api["api_key_id"],
        usage_plan_id=api["usage_plan_id"],
        stage=spec.stage,
        endpoint_config=version,
        model_name=version,
        changed=bool(actions),
        actions=actions,
    )
    return outcome


def _delete_version(sm, spec: DeploySpec, config: str | None, model: str | None, actions: list[str]) -> None:
    """After a successful switch, the previous config and model are no longer referenced (MLflow does this too)."""
    for kind, name in (("endpoint_config", config), ("model", model)):
        if not name:
            continue
        try:
            desc = (
                sm.describe_endpoint_config(EndpointConfigName=name)
                if kind == "endpoint_config"
                else sm.describe_model(ModelName=name)
            )
            arn = desc.get("EndpointConfigArn") or desc.get("ModelArn")
            if not _ours(_sm_tags(sm, arn), spec.endpoint_name):
                continue
            if kind == "endpoint_config":
                sm.delete_endpoint_config(EndpointConfigName=name)
            else:
                sm.delete_model(ModelName=name)
            actions.append(f"deleted previous {kind.replace('_', ' ')} {name}")
        except ClientError as e:
            if not _not_found(e):
                raise


def write_outputs(outcome: Mapping, path: Path, github_output: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as f:
            f.writelines(
                f"{key}={outcome.get(key) or ''}\n"
                for key in (
                    "invoke_url",
                    "api_id",
                    "api_key_id",
                    "endpoint_name",
                    "training_job",
                    "previous_training_job",
                )
            )


# ----------------------------------------------------------------------------------------------- teardown


def teardown(clients, spec: DeploySpec, say: Callable[[str], None] = print) -> list[str]:
    """Delete what deploy.py created for this endpoint (checked by tag), and nothing else."""
    done: list[str] = []
    gw, sm, aas = clients.apigateway, clients.sagemaker, clients.autoscaling
    endpoint = spec.endpoint_name
    for plan in _paged(gw.get_usage_plans, "items", limit=500):
        if plan.get("name") == f"{spec.api_name}-plan" and _ours(plan.get("tags", {}), endpoint):
            for key in _paged(gw.get_usage_plan_keys, "items", usagePlanId=plan["id"], limit=500):
                gw.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"])
            stages = [
                {"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"}
                for s in plan.get("apiStages", [])
            ]
            if stages:
                gw.update_usage_plan(usagePlanId=plan["id"], patchOperations=stages)
            gw.delete_usage_plan(usagePlanId=plan["id"])
            done.append(f"deleted usage plan {plan['name']}")
    for key in _paged(gw.get_api_keys, "items", nameQuery=f"{spec.api_name}-key", limit=500):
        if key.get("name") == f"{spec.api_name}-key" and _ours(key.get("tags", {}), endpoint):
            gw.delete_api_key(apiKey=key["id"])
            done.append(f"deleted API key {key['name']}")
    for api in _paged(gw.get_rest_apis, "items", limit=500):
        if api.get("name") == spec.api_name and _ours(api.get("tags", {}), endpoint):
            gw.delete_rest_api(restApiId=api["id"])
            done.append(f"deleted REST API {api['name']} ({api['id']})")
    current = _describe_endpoint(sm, endpoint)
    if current is not None and _ours(_sm_tags(sm, current["EndpointArn"]), endpoint):
        rid = _resource_id(spec)
        for policy in aas.describe_scaling_policies(
            ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
        )["ScalingPolicies"]:
            if policy["PolicyName"] == _policy_name(spec):
                aas.delete_scaling_policy(
                    PolicyName=policy["PolicyName"],
                    ServiceNamespace="sagemaker",
                    ResourceId=rid,
                    ScalableDimension=SCALABLE_DIMENSION,
                )
                done.append(f"deleted scaling policy {policy['PolicyName']}")
        if aas.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[rid], ScalableDimension=SCALABLE_DIMENSION
        )["ScalableTargets"]:
            aas.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
            )
            done.append(f"deregistered scalable target {rid}")
        sm.delete_endpoint(EndpointName=endpoint)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=endpoint,
            WaiterConfig={"Delay": spec.wait_delay_s, "MaxAttempts": spec.wait_max_attempts},
        )
        done.append(f"deleted endpoint {endpoint}")
    elif current is not None:
        say(f"endpoint {endpoint} was not created by deploy.py: left in place")
    for config in _paged_sm(sm.list_endpoint_configs, "EndpointConfigs", NameContains=endpoint):
        if _ours(_sm_tags(sm, config["EndpointConfigArn"]), endpoint):
            sm.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
            done.append(f"deleted endpoint config {config['EndpointConfigName']}")
    for model in _paged_sm(sm.list_models, "Models", NameContains=endpoint):
        if _ours(_sm_tags(sm, model["ModelArn"]), endpoint):
            sm.delete_model(ModelName=model["ModelName"])
            done.append(f"deleted model {model['ModelName']}")
    live = live_record.read_live(clients.s3, spec.state_s3)
    if live and live.get("endpoint_name") == endpoint:
        live_record.delete_object(clients.s3, live_record.live_uri(spec.state_s3))
        done.append(f"deleted {live_record.live_uri(spec.state_s3)}")
    for line in done:
        say(f"  {line}")
    say(
        f"teardown of {endpoint}: {len(done)} resource(s) removed"
        if done
        else f"nothing of {endpoint} to remove"
    )
    return done


def _paged_sm(call, key: str, **kwargs) -> list[dict]:
    items, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return items
