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
from . import gateway, live_record, names, ownership

VARIANT = "AllTraffic"
MANAGER = ownership.MANAGER
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
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


_code = ownership.error_code
_not_found = ownership.is_not_found
_ours = ownership.is_ours


def _tags(spec: DeploySpec, **extra: str | None) -> dict[str, str]:
    return ownership.tags_for(spec.endpoint_name, **extra)


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
        from .training_job import _metrics_from_artifact, read_model_artifact

        files = read_model_artifact(clients.s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
        if "metrics.json" in files:
            metrics = {**_metrics_from_artifact(json.loads(files["metrics.json"])), **metrics}
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
    api = gateway.ensure_gateway(clients.apigateway, spec, actions)
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
    done += gateway.delete_gateway(gw, spec)
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
