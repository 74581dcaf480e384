"""API Gateway in front of the endpoint: REST API ``POST /predict`` integrated straight with SageMaker
InvokeEndpoint (AWS integration, credentials = the API-Gateway-invoke role), API key + usage plan, and the
integration responses that turn SageMaker's answers into the caller's status codes.

``ensure_gateway`` looks before it writes (idempotent); ``delete_gateway`` removes only what deploy.py tagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..errors import InputError
from . import names, ownership

if TYPE_CHECKING:
    from .deploy import DeploySpec

PREDICT_PATH = "predict"
JSON_ERROR = '{"error": {"code": "%s", "message": "%s"}}'
# SageMaker answers a container 4xx/5xx with 424 ModelError {"OriginalStatusCode", "OriginalMessage", ...},
# and a container that timed out or crashed with 424 and OriginalStatusCode 0. The caller gets:
# container 4xx -> that status with the container's own JSON body; 0 -> 504; 5xx -> 502 (JSON bodies).
MODEL_ERROR_TEMPLATE = (
    "#set($original = $input.path('$.OriginalStatusCode'))\n"
    "#if($original >= 400 && $original < 500)"
    "#set($context.responseOverride.status = $original)$input.path('$.OriginalMessage')"
    "#elseif($original == 0)#set($context.responseOverride.status = 504)"
    + JSON_ERROR % ("model_timeout", "the model did not answer in time (timed out or crashed)")
    + "#else#set($context.responseOverride.status = 502)"
    + JSON_ERROR % ("model_error", "the model failed")
    + "#end"
)
LOGGING_LEVEL = "ERROR"
# one JSON line per request; $context.integration.status is SageMaker's status before the mapping
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",'
    '"method":"$context.httpMethod","path":"$context.resourcePath","status":"$context.status",'
    '"integrationStatus":"$context.integration.status","latencyMs":"$context.responseLatency",'
    '"apiKeyId":"$context.identity.apiKeyId","error":"$context.error.message"}'
)
SAGEMAKER_4XX_TEMPLATE = (
    "#set($error = \"$!input.path('$.__type') $!input.path('$.message') $!input.path('$.Message')\")\n"
    "#if($error.contains('Throttl') || $error.contains('Rate exceeded'))"
    "#set($context.responseOverride.status = 429)"
    + JSON_ERROR % ("throttled", "too many requests: retry with backoff")
    + "#else"
    + JSON_ERROR % ("gateway_error", "the model endpoint rejected the call")
    + "#end"
)
CONTENT_TYPE = "method.response.header.Content-Type"
JSON_CONTENT_TYPE = {CONTENT_TYPE: "'application/json'"}


@dataclass(frozen=True)
class IntegrationResponse:
    """One selection pattern (matched against SageMaker's HTTP status) -> method response."""

    status: str
    pattern: str | None
    templates: dict[str, str] | None
    parameters: dict[str, str]


INTEGRATION_RESPONSES = (
    # the answer's own Content-Type (CSV or JSON) passes through
    IntegrationResponse("200", None, None, {CONTENT_TYPE: "integration.response.header.Content-Type"}),
    IntegrationResponse("400", "424", {"application/json": MODEL_ERROR_TEMPLATE}, JSON_CONTENT_TYPE),
    # SageMaker's ModelNotReadyException is 429
    IntegrationResponse(
        "429",
        "429",
        {"application/json": JSON_ERROR % ("throttled", "too many requests: retry with backoff")},
        JSON_CONTENT_TYPE,
    ),
    # any other 4xx from SageMaker (endpoint missing, access denied) is our configuration, not the caller's;
    # but runtime throttling is AWS's common ThrottlingException, HTTP 400 like ValidationError: told apart
    # by the error body (the pattern only sees the status)
    IntegrationResponse(
        "500",
        "40\\d|41\\d|42[0-35-8]|4[3-9]\\d",
        {"application/json": SAGEMAKER_4XX_TEMPLATE},
        JSON_CONTENT_TYPE,
    ),
    IntegrationResponse(
        "502",
        "5\\d{2}",
        {"application/json": JSON_ERROR % ("model_unavailable", "the model endpoint failed")},
        JSON_CONTENT_TYPE,
    ),
)


def integration_uri(region: str, endpoint: str) -> str:
    return (
        f"arn:{names.partition(region)}:apigateway:{region}:runtime.sagemaker:"
        f"path/endpoints/{endpoint}/invocations"
    )


def invoke_url(api_id: str, region: str, stage: str) -> str:
    return f"https://{api_id}.execute-api.{region}.{names.dns_suffix(region)}/{stage}/{PREDICT_PATH}"


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
    ours = [i for i in found if ownership.is_ours(i.get("tags", {}), spec.endpoint_name)]
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
            tags=ownership.tags_for(spec.endpoint_name),
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
        if not ownership.is_not_found(e):
            raise
    if stage is None or len(actions) > changed_before:
        gw.create_deployment(
            restApiId=api_id,
            stageName=spec.stage,
            description=f"POST /{PREDICT_PATH} -> SageMaker endpoint {spec.endpoint_name}",
        )
        actions.append(f"deployed stage {spec.stage}")
    _ensure_stage_logging(gw, spec, api_id, actions)
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
        if not ownership.is_not_found(e):
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
    for response in INTEGRATION_RESPONSES:
        if response.status not in method_responses:
            gw.put_method_response(
                restApiId=api_id,
                resourceId=rid,
                httpMethod="POST",
                statusCode=response.status,
                responseModels={"application/json": "Empty"},
                responseParameters={CONTENT_TYPE: False},
            )
        have = existing.get(response.status) or {}
        if (
            have.get("selectionPattern") != response.pattern
            or (have.get("responseTemplates") or None) != response.templates
            or (have.get("responseParameters") or {}) != response.parameters
        ):
            kwargs: dict[str, object] = {"selectionPattern": response.pattern} if response.pattern else {}
            if response.templates:
                kwargs["responseTemplates"] = response.templates
            gw.put_integration_response(
                restApiId=api_id,
                resourceId=rid,
                httpMethod="POST",
                statusCode=response.status,
                responseParameters=response.parameters,
                **kwargs,
            )
            actions.append(
                f"mapped integration response {response.pattern or 'default'} -> {response.status}"
            )


def _ensure_stage_logging(gw, spec: DeploySpec, api_id: str, actions: list[str]) -> None:
    """Execution logging (errors) and metrics for every method, and the access log when the spec names its
    log group (``access_log_arn``; infra's GatewayAccessLogGroupArn). Execution logging needs the account's
    CloudWatch role, which infra/scl-delay.yaml sets (AWS::ApiGateway::Account)."""
    stage = gw.get_stage(restApiId=api_id, stageName=spec.stage)
    ops = []
    method = (stage.get("methodSettings") or {}).get("*/*") or {}
    if method.get("loggingLevel") != LOGGING_LEVEL:
        ops.append({"op": "replace", "path": "/*/*/logging/loglevel", "value": LOGGING_LEVEL})
    if not method.get("metricsEnabled"):
        ops.append({"op": "replace", "path": "/*/*/metrics/enabled", "value": "true"})
    destination = (spec.access_log_arn or "").removesuffix(":*")
    have = stage.get("accessLogSettings") or {}
    if destination and (have.get("destinationArn"), have.get("format")) != (destination, ACCESS_LOG_FORMAT):
        ops += [
            {"op": "replace", "path": "/accessLogSettings/destinationArn", "value": destination},
            {"op": "replace", "path": "/accessLogSettings/format", "value": ACCESS_LOG_FORMAT},
        ]
    if ops:
        gw.update_stage(restApiId=api_id, stageName=spec.stage, patchOperations=ops)
        actions.append(
            f"stage {spec.stage}: execution logging {LOGGING_LEVEL}, metrics"
            + (f", access log to {destination}" if destination else "")
        )


def _ensure_api_key(gw, spec: DeploySpec, actions: list[str]) -> dict:
    name = f"{spec.api_name}-key"
    key = _find_owned(_paged(gw.get_api_keys, "items", nameQuery=name, limit=500), name, spec, "API key")
    if key is None:
        key = gw.create_api_key(
            name=name,
            enabled=True,
            tags=ownership.tags_for(spec.endpoint_name),
            description=f"caller key for {spec.api_name}",
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
            tags=ownership.tags_for(spec.endpoint_name),
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


def delete_gateway(gw, spec: DeploySpec) -> list[str]:
    """Usage plan (keys and stages detached first), API key and REST API that deploy.py made for the
    endpoint."""
    done: list[str] = []
    endpoint = spec.endpoint_name
    for plan in _paged(gw.get_usage_plans, "items", limit=500):
        if plan.get("name") == f"{spec.api_name}-plan" and ownership.is_ours(plan.get("tags", {}), endpoint):
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
        if key.get("name") == f"{spec.api_name}-key" and ownership.is_ours(key.get("tags", {}), endpoint):
            gw.delete_api_key(apiKey=key["id"])
            done.append(f"deleted API key {key['name']}")
    for api in _paged(gw.get_rest_apis, "items", limit=500):
        if api.get("name") == spec.api_name and ownership.is_ours(api.get("tags", {}), endpoint):
            gw.delete_rest_api(restApiId=api["id"])
            done.append(f"deleted REST API {api['name']} ({api['id']})")
    return done
