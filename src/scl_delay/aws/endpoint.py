"""The endpoint and its rollout: Model -> EndpointConfig -> endpoint (create, or blue/green update watched by
CloudWatch alarms this module owns). Each ``ensure_*`` looks before it writes; ``delete_*`` sit beside them.

The rollout strategy is a named field (``Strategy``), chosen in one place (``choose_strategy``), as MLflow's
``DEPLOYMENT_MODES`` in ``mlflow/sagemaker``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import WaiterError

from ..errors import InputError
from . import names, ownership, registry
from .scaling import VARIANT

if TYPE_CHECKING:
    from .deploy import DeploySpec

BLUE_GREEN_WAIT_S = 300  # baking period: the alarms are watched before the old fleet goes
BLUE_GREEN_TERMINATION_S = 120
BLUE_GREEN_TIMEOUT_S = 3600
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack")
LATENCY_ALARM_PERIOD_S = 60
LATENCY_ALARM_PERIODS = 3


class Strategy(enum.Enum):
    CREATE = "create"  # no endpoint yet
    BLUE_GREEN = "blue-green"  # UpdateEndpoint, all at once after a baking period, alarms roll it back
    UNCHANGED = "unchanged"  # the endpoint already serves this config


class RollbackError(Exception):
    """The endpoint did not end InService on the new config (failed, or rolled back by an alarm)."""

    def __init__(self, message: str, failure_reason: str | None = None):
        super().__init__(message)
        self.failure_reason = failure_reason


def choose_strategy(current: dict | None, config: str) -> Strategy:
    if current is None:
        return Strategy.CREATE
    if current.get("EndpointConfigName") == config and current.get("EndpointStatus") == "InService":
        return Strategy.UNCHANGED
    return Strategy.BLUE_GREEN


# ------------------------------------------------------------------------------------------ requests (pure)


def model_request(spec: DeploySpec, name: str, version: registry.Version, artifact: str) -> dict:
    """CreateModel from a registered version: its image by digest, the artifact copied to the deploy-only
    prefix, the serving role, no network for the container (moto drops EnableNetworkIsolation)."""
    return {
        "ModelName": name,
        "ExecutionRoleArn": spec.role_arn,
        "PrimaryContainer": {
            "Image": version.image,
            "ModelDataUrl": artifact,
            "Environment": {"SCL_DELAY_MODEL_PACKAGE": version.arn},
        },
        "EnableNetworkIsolation": True,
        "Tags": _tags(spec, version),
    }


def endpoint_config_request(spec: DeploySpec, name: str, model: str, version: registry.Version) -> dict:
    request: dict = {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model,
                "InitialInstanceCount": spec.instance_count,
                "InstanceType": spec.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "Tags": _tags(spec, version),
    }
    if spec.data_capture_percent:
        request["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": spec.data_capture_percent,
            "DestinationS3Uri": names.join_s3(spec.deploy_s3 or "", spec.endpoint_name, "data-capture"),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json", "application/jsonlines"],
            },
        }
    return request


def _tags(spec: DeploySpec, version: registry.Version) -> list[dict[str, str]]:
    return names.tags(
        ownership.tags_for(
            spec.endpoint_name,
            **{
                names.TAG_COMMIT: version.commit,
                names.TAG_TRAINING_JOB: version.training_job,
                names.TAG_MODEL_PACKAGE: version.arn,
            },
        )
    )


def alarm_requests(spec: DeploySpec) -> list[dict]:
    """The alarms a blue/green update is watched by (AWS: alarms are a prerequisite for auto-rollback):
    any 5xx from the model, and p99 model latency over the limit for three minutes."""
    dimensions = [
        {"Name": "EndpointName", "Value": spec.endpoint_name},
        {"Name": "VariantName", "Value": VARIANT},
    ]
    common = {
        "Namespace": "AWS/SageMaker",
        "Dimensions": dimensions,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
        "Tags": [{"Key": k, "Value": v} for k, v in ownership.tags_for(spec.endpoint_name).items()],
    }
    return [
        {
            **common,
            "AlarmName": f"{spec.endpoint_name}-5xx",
            "AlarmDescription": f"{spec.endpoint_name}: the model container answered 5xx "
            "(rolls back blue/green)",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
        {
            **common,
            "AlarmName": f"{spec.endpoint_name}-latency-p99",
            "AlarmDescription": f"{spec.endpoint_name}: p99 ModelLatency above {spec.latency_alarm_ms} ms",
            "MetricName": "ModelLatency",  # microseconds
            "ExtendedStatistic": "p99",
            "Period": LATENCY_ALARM_PERIOD_S,
            "EvaluationPeriods": LATENCY_ALARM_PERIODS,
            "Threshold": float(spec.latency_alarm_ms * 1000),
            "ComparisonOperator": "GreaterThanThreshold",
        },
    ]


def deployment_config(alarms: list[str]) -> dict:
    """Blue/green, all at once after a baking period; the alarms roll it back automatically."""
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
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def update_request(spec: DeploySpec, config: str, alarms: list[str], same_instance_type: bool) -> dict:
    """UpdateEndpoint. Same instance type: keep the variant's current (auto-scaled) instance count and
    weight (RetainAllVariantProperties), but take the new config's data capture. Another instance type:
    the new config's counts (scaling was released, and is registered again after)."""
    request = {
        "EndpointName": spec.endpoint_name,
        "EndpointConfigName": config,
        "DeploymentConfig": deployment_config(alarms),
        "RetainAllVariantProperties": same_instance_type,
    }
    if same_instance_type:
        request["ExcludeRetainedVariantProperties"] = [{"VariantPropertyType": "DataCaptureConfig"}]
    return request


# ------------------------------------------------------------------------------------------------ calls


def ensure_model(sm, request: dict, actions: list[str]) -> None:
    if ownership.describe_or_none(sm.describe_model, ModelName=request["ModelName"]) is None:
        sm.create_model(**request)
        actions.append(f"created model {request['ModelName']}")


def ensure_endpoint_config(sm, request: dict, actions: list[str]) -> None:
    name = request["EndpointConfigName"]
    if ownership.describe_or_none(sm.describe_endpoint_config, EndpointConfigName=name) is None:
        sm.create_endpoint_config(**request)
        actions.append(f"created endpoint config {name}")


def ensure_alarms(cw, spec: DeploySpec, actions: list[str]) -> list[str]:
    """Our alarms (created or updated to the wanted definition) plus any named with --rollback-alarm, each
    checked to exist: an AutoRollbackConfiguration naming a missing alarm watches nothing."""
    wanted = alarm_requests(spec) if spec.create_alarms else []
    existing = {a["AlarmName"]: a for a in _describe_alarms(cw, [w["AlarmName"] for w in wanted])}
    for request in wanted:
        have = existing.get(request["AlarmName"])
        if have is None or have.get("Threshold") != request["Threshold"]:
            cw.put_metric_alarm(**request)
            actions.append(f"put alarm {request['AlarmName']}")
    names_ = [w["AlarmName"] for w in wanted] + list(spec.rollback_alarms)
    found = {a["AlarmName"] for a in _describe_alarms(cw, names_)}
    missing = [n for n in names_ if n not in found]
    if missing:
        raise InputError(f"rollback alarm(s) {', '.join(missing)} do not exist in CloudWatch")
    return names_


def _describe_alarms(cw, alarm_names: list[str]) -> list[dict]:
    out = []
    for i in range(0, len(alarm_names), 100):
        out += cw.describe_alarms(AlarmNames=alarm_names[i : i + 100]).get("MetricAlarms", [])
    return out


def delete_alarms(cw, spec: DeploySpec) -> list[str]:
    ours = [a["AlarmName"] for a in _describe_alarms(cw, [r["AlarmName"] for r in alarm_requests(spec)])]
    if ours:
        cw.delete_alarms(AlarmNames=ours)
    return [f"deleted alarm {n}" for n in ours]


def describe_endpoint(sm, name: str) -> dict | None:
    return ownership.describe_or_none(sm.describe_endpoint, EndpointName=name)


def check_owned(sm, current: dict, endpoint: str) -> None:
    if not ownership.is_ours(ownership.sagemaker_tags(sm, current["EndpointArn"]), endpoint):
        raise InputError(
            f"endpoint {endpoint} exists but was not created by deploy.py "
            f"(tag {names.TAG_MANAGED_BY} missing): refusing to take it over"
        )


def wait_in_service(sm, spec: DeploySpec, say: Callable[[str], None], budget_s: float = 0) -> dict:
    """Wait at least ``budget_s`` (the blue/green maximum for an update) or the spec's attempts."""
    attempts = max(spec.wait_max_attempts, math.ceil(budget_s / max(spec.wait_delay_s, 1)))
    say(f"waiting for endpoint {spec.endpoint_name} to be InService (up to {attempts * spec.wait_delay_s} s)")
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=spec.endpoint_name,
            WaiterConfig={"Delay": spec.wait_delay_s, "MaxAttempts": attempts},
        )
    except WaiterError:
        desc = describe_endpoint(sm, spec.endpoint_name) or {}
        reason = desc.get("FailureReason")
        raise RollbackError(
            f"endpoint {spec.endpoint_name} is {desc.get('EndpointStatus', 'gone')}: "
            f"{reason or 'no FailureReason'}",
            reason,
        ) from None
    return sm.describe_endpoint(EndpointName=spec.endpoint_name)


def roll_out(sm, spec: DeploySpec, config: str, alarms: list[str], same_instance_type: bool, say) -> dict:
    """Create or update the endpoint to ``config``; the endpoint as it ends. RollbackError unless it ends
    InService on ``config`` (the waiter succeeds after an automatic rollback too, on the old config)."""
    current = describe_endpoint(sm, spec.endpoint_name)
    strategy = choose_strategy(current, config)
    if strategy is Strategy.UNCHANGED:
        assert current is not None  # unchanged: the endpoint exists and serves ``config`` already
        return current
    if strategy is Strategy.CREATE:
        sm.create_endpoint(
            EndpointName=spec.endpoint_name,
            EndpointConfigName=config,
            Tags=names.tags(ownership.tags_for(spec.endpoint_name)),
        )
        final = wait_in_service(sm, spec, say)
    else:
        sm.update_endpoint(**update_request(spec, config, alarms, same_instance_type))
        final = wait_in_service(sm, spec, say, BLUE_GREEN_TIMEOUT_S + BLUE_GREEN_TERMINATION_S)
    if final["EndpointConfigName"] != config:
        raise RollbackError(
            f"endpoint {spec.endpoint_name} is InService on {final['EndpointConfigName']}, not {config}: "
            f"the update was rolled back ({final.get('FailureReason') or 'no FailureReason'})",
            final.get("FailureReason"),
        )
    return final


def settle(sm, spec: DeploySpec, say) -> dict | None:
    """The endpoint once no update is in flight; RollbackError if it is Failed."""
    current = describe_endpoint(sm, spec.endpoint_name)
    if current is None:
        return None
    check_owned(sm, current, spec.endpoint_name)
    if current["EndpointStatus"] in BUSY:
        current = wait_in_service(sm, spec, say, BLUE_GREEN_TIMEOUT_S + BLUE_GREEN_TERMINATION_S)
    if current["EndpointStatus"] == "Failed":
        raise RollbackError(
            f"endpoint {spec.endpoint_name} is Failed ({current.get('FailureReason')}); "
            f"delete it (deploy.py --teardown) and deploy again",
            current.get("FailureReason"),
        )
    return current


def delete_unused_versions(sm, spec: DeploySpec, keep: str) -> list[str]:
    """Endpoint configs and models that deploy.py made for this endpoint, other than ``keep``."""
    done = []
    for config in ownership.paged(
        sm.list_endpoint_configs, "EndpointConfigs", NameContains=spec.endpoint_name
    ):
        name = config["EndpointConfigName"]
        if name != keep and ownership.is_ours(
            ownership.sagemaker_tags(sm, config["EndpointConfigArn"]), spec.endpoint_name
        ):
            sm.delete_endpoint_config(EndpointConfigName=name)
            done.append(f"deleted endpoint config {name}")
    for model in ownership.paged(sm.list_models, "Models", NameContains=spec.endpoint_name):
        name = model["ModelName"]
        if name != keep and ownership.is_ours(
            ownership.sagemaker_tags(sm, model["ModelArn"]), spec.endpoint_name
        ):
            sm.delete_model(ModelName=name)
            done.append(f"deleted model {name}")
    return done


def delete_endpoint(sm, spec: DeploySpec, say) -> list[str]:
    current = describe_endpoint(sm, spec.endpoint_name)
    if current is None:
        return []
    if not ownership.is_ours(ownership.sagemaker_tags(sm, current["EndpointArn"]), spec.endpoint_name):
        say(f"endpoint {spec.endpoint_name} was not created by deploy.py: left in place")
        return []
    sm.delete_endpoint(EndpointName=spec.endpoint_name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=spec.endpoint_name,
        WaiterConfig={"Delay": spec.wait_delay_s, "MaxAttempts": spec.wait_max_attempts},
    )
    return [f"deleted endpoint {spec.endpoint_name}"]
