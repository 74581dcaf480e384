"""Ship a registered model: the version of the merged commit -> provenance checks -> gate against the live
version -> Approved (or Rejected, with the reason) -> Model -> EndpointConfig -> endpoint (create, or
blue/green update watched by alarms) -> auto scaling -> API Gateway -> smoke test -> (on failure) rollback.

What is live is read from the endpoint and the registry (registry.live_version), never from a file a pull
request could write. Names are deterministic (endpoint + version + hash of the inputs), so a second run with
the same inputs changes nothing and says so (``changed: false``). Everything created is tagged
``scl-delay:managed-by=deploy.py`` and ``scl-delay:deployment=<endpoint>``; teardown deletes only that, and
keeps the registry's history unless asked to purge it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from . import endpoint, gateway, names, ownership, provenance, registry, scaling, smoke
from .endpoint import RollbackError, Strategy
from .provenance import ProvenanceError

__all__ = ["DeploySpec", "GateRefusedError", "ProvenanceError", "RollbackError", "SmokeTestError", "Strategy"]


@dataclass(frozen=True)
class DeploySpec:
    """Everything a deploy needs, validated before the first AWS call. Defaults live here, and only here."""

    region: str
    endpoint_name: str = names.PROJECT
    deploy_s3: str | None = None  # deploy-only prefix: artifact copies and data capture
    commit: str | None = None  # the trained commit (the merged PR's head) whose version to deploy
    model_version: int | None = None  # or an explicit version number (rollback, manual redeploy)
    merge_commit: str | None = None
    merged_by: str | None = None
    model_package_group: str = ""  # default: the endpoint name
    role_arn: str | None = None  # the SERVING execution role (never the training role)
    apigw_role_arn: str | None = None
    access_log_arn: str | None = None  # the stage's access log group (infra's GatewayAccessLogGroupArn)
    instance_type: str = "ml.m5.large"
    instance_count: int = 1  # 2 or more spreads instances over Availability Zones
    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations: float = 100.0
    gate_metric: str = "test:pr_auc"
    tolerance: float = 0.01
    force: bool = False
    create_alarms: bool = True
    rollback_alarms: tuple[str, ...] = ()  # extra alarms, which must already exist
    latency_alarm_ms: int = 1000
    data_capture_percent: int = 0
    api_name: str = ""  # default: the endpoint name
    stage: str = "prod"
    rate_limit: float = 20.0
    burst_limit: int = 40
    wait_delay_s: int = 30
    wait_max_attempts: int = 60
    smoke_test: bool = False
    smoke_attempts: int = 6
    smoke_delay_s: float = 10.0

    def __post_init__(self):
        if not self.model_package_group:
            object.__setattr__(self, "model_package_group", self.endpoint_name)
        if not self.api_name:
            object.__setattr__(self, "api_name", self.endpoint_name)


class RefusedError(Exception):
    """Nothing was changed: the gate or a provenance check refused the version."""


class GateRefusedError(RefusedError):
    """The challenger is worse than the live version beyond the tolerance."""


class SmokeTestError(Exception):
    """The new version is serving, but the smoke test through the gateway failed."""


def check_spec(spec: DeploySpec, *, teardown: bool = False) -> None:
    problems = names.name_problems(
        [(spec.endpoint_name, "--endpoint-name"), (spec.model_package_group, "--model-package-group")]
    )
    if spec.deploy_s3:
        try:
            names.parse_s3_uri(spec.deploy_s3, "--deploy-s3")
        except InputError as e:
            problems.append(str(e))
    elif not teardown:
        problems.append("missing --deploy-s3 (or $DEPLOY_S3_PREFIX)")
    arns = (
        (spec.role_arn, "--serving-role-arn", names.check_role_arn),
        (spec.apigw_role_arn, "--apigw-role-arn", names.check_role_arn),
        (spec.access_log_arn, "--access-log-arn", names.check_log_group_arn),
    )
    for arn, what, check in arns:
        if arn and (problem := check(arn, what)):
            problems.append(problem)
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
    if not 0 <= spec.data_capture_percent <= 100:
        problems.append(f"--data-capture-percent must be 0..100, got {spec.data_capture_percent}")
    if names.slug(spec.stage) != spec.stage:
        problems.append(f"--stage must be lower-case letters, digits and hyphens, got {spec.stage!r}")
    if problems:
        raise InputError("; ".join(problems))


# ---------------------------------------------------------------------------------------- which version, gate


def select_version(sm, spec: DeploySpec) -> registry.Version:
    group = spec.model_package_group
    if spec.model_version is not None:
        for version in registry.versions(sm, group):
            if version.number == spec.model_version:
                return version
        raise InputError(f"{group} has no version {spec.model_version}")
    if not spec.commit:
        raise InputError("missing --commit (the trained commit) or --model-version")
    found = registry.for_commit(sm, group, spec.commit)
    if found is None:
        raise InputError(
            f"no model package is registered for commit {spec.commit} in {group}: did its PR's training "
            f"job complete? (deploy what was trained for the merge, or train the merge commit first)"
        )
    return found


def live_metrics(sm, live: registry.Version | None) -> dict[str, float]:
    """The live version's metrics as SageMaker scraped them from its job (the metadata is for display)."""
    if live is None or not live.training_job:
        return {}
    desc = ownership.describe_or_none(sm.describe_training_job, TrainingJobName=live.training_job)
    from .training_job import scraped_metrics

    return scraped_metrics(desc) if desc else dict(live.metrics)


def gate(
    candidate: registry.Version,
    metrics: Mapping[str, float],
    live: registry.Version | None,
    live_values: Mapping[str, float],
    spec: DeploySpec,
    say: Callable[[str], None],
) -> str:
    """Champion/challenger: refuse when the candidate's gate metric is below live - tolerance. Returns the
    verdict for the approval description."""
    if live is None or live.arn == candidate.arn:
        verdict = "no other version is live" if live is None else "this version is already live"
        say(f"gate: {verdict}")
        return verdict
    metric = spec.gate_metric
    new, old = metrics.get(metric), live_values.get(metric)
    if new is None or old is None:
        message = (
            f"cannot compare {metric}: {candidate.label()} {new!r}, live {live.label()} {old!r} "
            f"(known metrics: {', '.join(sorted(metrics)) or 'none'})"
        )
    elif new >= old - spec.tolerance:
        verdict = (
            f"{metric} {new:.4f} vs live {live.label()} {old:.4f} (tolerance {spec.tolerance}): accepted"
        )
        say(f"gate: {verdict}")
        return verdict
    else:
        message = (
            f"{metric} {new:.4f} is worse than the live model's {old:.4f} ({live.label()}) by more than the "
            f"tolerance {spec.tolerance}"
        )
    if spec.force:
        say(f"gate: {message}; deploying anyway (--force)")
        return f"{message}; forced"
    raise GateRefusedError(f"{message}; pass --force to deploy anyway")


# ----------------------------------------------------------------------------------------------- deploy


def deploy(
    clients, spec: DeploySpec, say: Callable[[str], None] = print, outcome: dict | None = None
) -> dict:
    """Deploy the selected version; fills ``outcome`` as it goes, so a failure still reports what it knew
    (above all ``changed``: whether the endpoint or gateway was touched, which decides a rollback)."""
    outcome = {} if outcome is None else outcome
    sm = clients.sagemaker
    current = endpoint.settle(sm, spec, say)
    live, _ = registry.live_version(sm, spec.endpoint_name)
    outcome.update(
        endpoint_name=spec.endpoint_name,
        model_package_group=spec.model_package_group,
        log_group=names.endpoint_log_group(spec.endpoint_name),
        changed=False,
        actions=[],
        **_version_fields("previous_", live),
    )
    version = select_version(sm, spec)
    outcome.update(_version_fields("", version))
    say(
        f"deploying {version.label()} ({version.status}; commit {version.commit}, job {version.training_job})"
    )
    actions: list[str] = outcome["actions"]
    artifact, verdict = _check_and_gate(clients, spec, version, live, say)
    outcome.update(gate=verdict, artifact=artifact)
    if version.status != registry.APPROVED:
        version = _approve(sm, spec, version, verdict)
        say(f"approved {version.label()}")
    outcome["status"] = version.status
    try:
        final = _roll_out(clients, spec, version, artifact, current, actions, say)
    except RollbackError as e:
        registry.set_status(sm, version, registry.REJECTED, f"deploy failed: {e}")
        outcome["failure_reason"] = e.failure_reason
        say(f"the container's logs: CloudWatch log group {outcome['log_group']}")
        raise
    finally:
        outcome["changed"] = bool(actions)
    api = gateway.ensure_gateway(clients.apigateway, spec, actions)
    actions += endpoint.delete_unused_versions(sm, spec, keep=final["EndpointConfigName"])
    outcome.update(
        invoke_url=api["invoke_url"],
        api_id=api["api_id"],
        api_key_id=api["api_key_id"],
        usage_plan_id=api["usage_plan_id"],
        stage=spec.stage,
        endpoint_config=final["EndpointConfigName"],
        model_name=final["EndpointConfigName"],
        changed=bool(actions),
    )
    for action in actions:
        say(f"  {action}")
    if not actions:
        say("no changes: everything is already as requested")
    if spec.smoke_test:
        _smoke(clients, spec, outcome, say)
    return outcome


def _check_and_gate(clients, spec: DeploySpec, version, live, say) -> tuple[str, str]:
    """Provenance, the deploy-only copy and the gate: (the copy's URI, the gate's verdict). A refusal marks
    the version Rejected with the reason and raises RefusedError: nothing else has changed."""
    sm = clients.sagemaker
    try:
        if version.status == registry.REJECTED and not spec.force:
            raise RefusedError(
                f"{version.label()} was rejected ({version.approval_description or 'no reason given'}); "
                f"pass --force to deploy it anyway"
            )
        job = provenance.check_job(sm, version, spec.commit)
        provenance.check_image_for_commit(clients.ecr, version, version.commit or spec.commit or "")
        artifact, files, copied = provenance.copy_artifact(
            clients.s3, version, spec.deploy_s3 or "", spec.endpoint_name
        )
        if copied:
            say(f"copied the artifact (sha256 checked) to {artifact}")
        verdict = gate(version, provenance.gate_metrics(job, files), live, live_metrics(sm, live), spec, say)
    except (RefusedError, ProvenanceError) as e:
        if version.status != registry.REJECTED:
            registry.set_status(sm, version, registry.REJECTED, f"refused by deploy.py: {e}")
            say(f"marked {version.label()} Rejected")
        raise (e if isinstance(e, RefusedError) else RefusedError(str(e))) from None
    return artifact, verdict


def _approve(sm, spec: DeploySpec, version: registry.Version, verdict: str) -> registry.Version:
    merge = f"merge commit {spec.merge_commit}" if spec.merge_commit else f"commit {version.commit}"
    by = f" by @{spec.merged_by}" if spec.merged_by else ""
    return registry.set_status(
        sm,
        version,
        registry.APPROVED,
        f"approved by deploy.py for {merge}{by}; gate: {verdict}",
        **{registry.KEY_MERGE_COMMIT: spec.merge_commit, registry.KEY_MERGED_BY: spec.merged_by},
    )


def _version_fields(prefix: str, version: registry.Version | None) -> dict:
    return {
        f"{prefix}version": version.number if version else None,
        f"{prefix}version_arn": version.arn if version else None,
        f"{prefix}training_job": version.training_job if version else None,
        f"{prefix}commit": version.commit if version else None,
    }


def _roll_out(clients, spec, version, artifact, current, actions, say) -> dict:
    """Model, config, alarms, endpoint; auto scaling registered again in a ``finally`` (rolled back or
    not)."""
    sm = clients.sagemaker
    name = names.versioned_name(
        spec.endpoint_name,
        f"v{version.number}",
        version.arn,
        version.image,
        artifact,
        spec.instance_type,
        str(spec.instance_count),
        spec.role_arn or "",
        str(spec.data_capture_percent),
    )
    endpoint.ensure_model(sm, endpoint.model_request(spec, name, version, artifact), actions)
    endpoint.ensure_endpoint_config(sm, endpoint.endpoint_config_request(spec, name, name, version), actions)
    strategy = endpoint.choose_strategy(current, name)
    alarms = (
        endpoint.ensure_alarms(clients.cloudwatch, spec, actions) if strategy is Strategy.BLUE_GREEN else []
    )
    same_type = True
    if strategy is Strategy.BLUE_GREEN:
        same_type = not scaling.release_if_instance_type_changes(
            sm, clients.autoscaling, spec, current["EndpointConfigName"], actions
        )
    try:
        final = endpoint.roll_out(sm, spec, name, alarms, same_type, say)
        if strategy is not Strategy.UNCHANGED:
            actions.append(
                f"{strategy.value}: endpoint {spec.endpoint_name} now serves {version.label()} ({name})"
            )
    finally:
        scaling.ensure_autoscaling(clients.autoscaling, spec, actions)
    return final


def _smoke(clients, spec: DeploySpec, outcome: dict, say) -> None:
    result = smoke.smoke_test(
        clients.apigateway,
        outcome["invoke_url"],
        outcome["api_key_id"],
        os.environ,
        attempts=spec.smoke_attempts,
        delay_s=spec.smoke_delay_s,
    )
    outcome["smoke"] = result.to_dict()
    say(f"smoke test: POST {result.url} -> {result.status} {result.body[:120]}")
    if not result.ok:
        raise SmokeTestError(f"smoke test through {result.url} failed: {result.reason}")


def rollback(
    clients, spec: DeploySpec, reason: str, say: Callable[[str], None] = print, prefer: int | None = None
) -> dict:
    """Reject the version that is live (it failed: ``reason``) and redeploy the previous one: ``prefer`` (the
    version live before this deploy) if it is still Approved, else the newest other Approved version. No
    gate (it was live before). InputError when there is none."""
    sm = clients.sagemaker
    failed, _ = registry.live_version(sm, spec.endpoint_name)
    if failed is not None and failed.status != registry.REJECTED:
        registry.set_status(sm, failed, registry.REJECTED, f"rolled back: {reason}")
        say(f"marked {failed.label()} Rejected: {reason}")
    approved = [
        v
        for v in registry.versions(sm, spec.model_package_group, registry.APPROVED)
        if failed is None or v.number != failed.number
    ]
    target = next((v for v in approved if v.number == prefer), approved[0] if approved else None)
    if target is None:
        raise InputError(f"no other Approved version in {spec.model_package_group} to roll back to")
    say(f"rolling back to {target.label()} (commit {target.commit})")
    again = dataclasses.replace(spec, model_version=target.number, commit=None, force=True)
    outcome = deploy(clients, again, say)
    outcome["rolled_back_from"] = failed.number if failed else None
    return outcome


def deploy_with_rollback(clients, spec: DeploySpec, say: Callable[[str], None], outcome: dict) -> dict:
    """deploy(); when the smoke test fails after a change, roll back to the version live before (or the
    newest other Approved one) and smoke-test that too. The SmokeTestError is raised again afterwards, for
    the exit code; ``rolled_back`` says whether the rollback worked, ``rollback_error`` why not."""
    try:
        return deploy(clients, spec, say, outcome)
    except SmokeTestError as e:
        outcome["rolled_back"] = False
        if not outcome.get("changed"):
            raise
        say(f"{e}: rolling back")
        try:
            back = rollback(clients, spec, str(e), say, prefer=outcome.get("previous_version"))
        except (InputError, RefusedError, RollbackError, SmokeTestError, ProvenanceError) as failure:
            outcome["rollback_error"] = str(failure)
            say(f"rollback failed: {failure}")
            raise e from None
        outcome["rollback"] = {
            k: back.get(k) for k in ("version", "version_arn", "changed", "smoke", "invoke_url")
        }
        outcome["rolled_back"] = True
        raise


# ----------------------------------------------------------------------------------------------- outputs


GITHUB_OUTPUTS = (
    "invoke_url",
    "api_id",
    "api_key_id",
    "endpoint_name",
    "changed",
    "version",
    "previous_version",
    "training_job",
    "previous_training_job",
    "rolled_back",
)


def write_outputs(outcome: Mapping, path: Path, github_output: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outcome, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as f:
            for key in GITHUB_OUTPUTS:
                value = outcome.get(key)
                f.write(f"{key}={json.dumps(value) if isinstance(value, bool) else (value or '')}\n")


# --------------------------------------------------------------------------------------------- list, teardown


def list_versions(clients, spec: DeploySpec) -> list[dict]:
    live, _ = registry.live_version(clients.sagemaker, spec.endpoint_name)
    rows = []
    for v in registry.versions(clients.sagemaker, spec.model_package_group):
        m = v.metrics
        rows.append(
            {
                "version": v.number,
                "status": v.status,
                "live": live is not None and v.arn == live.arn,
                "commit": (v.commit or "")[:8],
                "pr": v.pr,
                "recall": m.get("test:recall"),
                "pr_auc": m.get("test:pr_auc"),
                "created": v.created.isoformat(timespec="seconds") if v.created else None,
                "training_job": v.training_job,
                "arn": v.arn,
            }
        )
    return rows


def format_versions(rows: list[dict], group: str) -> str:
    if not rows:
        return f"{group}: no versions registered"
    lines = [
        f"{'':2}{'version':>7}  {'status':<21} {'commit':<8}  "
        f"{'PR':>4}  {'recall':>6}  {'PR-AUC':>6}  created"
    ]
    for r in rows:
        recall = f"{r['recall']:.4f}" if r["recall"] is not None else "—"
        pr_auc = f"{r['pr_auc']:.4f}" if r["pr_auc"] is not None else "—"
        lines.append(
            f"{'▶ ' if r['live'] else '  '}{r['version']:>7}  {r['status']:<21} {r['commit']:<8}  "
            f"{r['pr'] or '—':>4}  {recall:>6}  {pr_auc:>6}  {r['created'] or '—'}"
        )
    lines.append(f"(▶ live; group {group})")
    return "\n".join(lines)


def teardown(
    clients, spec: DeploySpec, say: Callable[[str], None] = print, purge_registry: bool = False
) -> list[str]:
    """Delete what deploy.py created for this endpoint (checked by tag), and nothing else. The registry's
    versions stay (they are the history) unless ``purge_registry``."""
    sm = clients.sagemaker
    done = gateway.delete_gateway(clients.apigateway, spec)
    current = endpoint.describe_endpoint(sm, spec.endpoint_name)
    if current is not None:
        if ownership.is_ours(ownership.sagemaker_tags(sm, current["EndpointArn"]), spec.endpoint_name):
            done += scaling.delete_autoscaling(clients.autoscaling, spec.endpoint_name)
    done += endpoint.delete_endpoint(sm, spec, say)
    done += endpoint.delete_unused_versions(sm, spec, keep="")
    done += endpoint.delete_alarms(clients.cloudwatch, spec)
    if purge_registry:
        done += registry.delete_group(sm, spec.model_package_group)
    for line in done:
        say(f"  {line}")
    kept = "" if purge_registry else f"; the registry {spec.model_package_group} keeps its versions"
    say(
        f"teardown of {spec.endpoint_name}: {len(done)} resource(s) removed{kept}"
        if done
        else f"nothing of {spec.endpoint_name} to remove{kept}"
    )
    return done
