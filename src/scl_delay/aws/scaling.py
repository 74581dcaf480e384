"""Application Auto Scaling for the endpoint's one variant: a scalable target (min..max instances) and a
target-tracking policy on invocations per instance. ``ensure_autoscaling`` beside ``delete_autoscaling``.

Application Auto Scaling refuses an endpoint update that changes a scaled variant's instance type, so the
target is released first (``release_if_instance_type_changes``) and registered again afterwards, in a
``finally``, so that a rolled-back update does not leave the old fleet without scaling (issue 11, defect 7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import ownership

if TYPE_CHECKING:
    from .deploy import DeploySpec

VARIANT = "AllTraffic"
NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
SCALE_IN_COOLDOWN_S = 300
SCALE_OUT_COOLDOWN_S = 60


def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations-per-instance"


def _targets(aas, endpoint: str) -> list[dict]:
    return aas.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(endpoint)], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]


def ensure_autoscaling(aas, spec: DeploySpec, actions: list[str]) -> dict:
    rid = resource_id(spec.endpoint_name)
    targets = _targets(aas, spec.endpoint_name)
    if not targets or (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) != (
        spec.min_capacity,
        spec.max_capacity,
    ):
        aas.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=spec.min_capacity,
            MaxCapacity=spec.max_capacity,
        )
        actions.append(f"registered scaling {rid} {spec.min_capacity}..{spec.max_capacity}")
    want = {
        "TargetValue": float(spec.target_invocations),
        "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
        "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
    }
    name = policy_name(spec.endpoint_name)
    policies = aas.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION, PolicyNames=[name]
    )["ScalingPolicies"]
    have = policies[0].get("TargetTrackingScalingPolicyConfiguration", {}) if policies else None
    if have is None or any(have.get(k) != v for k, v in want.items()):
        aas.put_scaling_policy(
            PolicyName=name,
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=want,
        )
        actions.append(f"put target-tracking policy {name} ({spec.target_invocations:g}/instance/min)")
    return {
        "resource_id": rid,
        "min": spec.min_capacity,
        "max": spec.max_capacity,
        "policy": name,
        "target_invocations": spec.target_invocations,
    }


def release_if_instance_type_changes(sm, aas, spec: DeploySpec, old_config: str, actions: list[str]) -> bool:
    """Deregister the target before an update that changes the instance type; True if it did."""
    try:
        old = sm.describe_endpoint_config(EndpointConfigName=old_config)["ProductionVariants"][0]
    except ClientError as e:
        if ownership.is_not_found(e):
            return False
        raise
    if old.get("InstanceType") == spec.instance_type or not _targets(aas, spec.endpoint_name):
        return False
    aas.deregister_scalable_target(
        ServiceNamespace=NAMESPACE,
        ResourceId=resource_id(spec.endpoint_name),
        ScalableDimension=SCALABLE_DIMENSION,
    )
    actions.append(f"deregistered scaling for {resource_id(spec.endpoint_name)} (instance type changes)")
    return True


def delete_autoscaling(aas, endpoint: str) -> list[str]:
    done = []
    rid = resource_id(endpoint)
    for policy in aas.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
    )["ScalingPolicies"]:
        if policy["PolicyName"] == policy_name(endpoint):
            aas.delete_scaling_policy(
                PolicyName=policy["PolicyName"],
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=SCALABLE_DIMENSION,
            )
            done.append(f"deleted scaling policy {policy['PolicyName']}")
    if _targets(aas, endpoint):
        aas.deregister_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION
        )
        done.append(f"deregistered scalable target {rid}")
    return done
