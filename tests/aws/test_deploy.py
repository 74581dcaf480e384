"""deploy.py against a real moto server: the registry version of the merged commit, checked, gated,
approved and deployed; rollback; teardown.

What moto cannot do, and what these tests check instead:
- endpoints are InService at once and no container runs: the tests check the Model/EndpointConfig/endpoint
  recorded in moto (image, artifact, variant, tags), not a running fleet;
- UpdateEndpoint is not in moto 5.2: the moto server runs our patch (local_aws.moto_update_endpoint), which
  keeps the DeploymentConfig sent and honours RetainAllVariantProperties; the blue/green shift is instant;
- moto's CreateModel drops EnableNetworkIsolation: the request deploy.py builds is checked instead;
- API Gateway invoke URLs cannot be called in moto's server mode: the smoke test goes to a stub gateway
  (more lenient than API Gateway: no key check, no mapping) whose answer depends on which version is live.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from scl_delay.aws import endpoint as endpoint_module
from scl_delay.aws import gateway, registry
from scl_delay.aws.cli import deploy_main, deploy_spec_from_args
from scl_delay.aws.deploy import DeploySpec

from .aws_helpers import (
    ACCOUNT,
    APIGW_ROLE_ARN,
    COMMIT,
    GROUP,
    REGION,
    SERVING_ROLE_ARN,
    WEAK_COMMIT,
    NoAws,
    unique,
)


def clone_versions(sm, group: str) -> dict[str, registry.Version]:
    """The session's two registered versions (weak first, then good) re-registered in a fresh group, so each
    test approves and rejects its own: same job, image, artifact and metadata."""
    sm.create_model_package_group(ModelPackageGroupName=group)
    out = {}
    for commit, label in ((WEAK_COMMIT, "weak"), (COMMIT, "good")):
        source = registry.for_commit(sm, GROUP, commit)
        desc = sm.describe_model_package(ModelPackageName=source.arn)
        arn = sm.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification=desc["InferenceSpecification"],
            CustomerMetadataProperties=desc["CustomerMetadataProperties"],
            ModelApprovalStatus="PendingManualApproval",
        )["ModelPackageArn"]
        out[label] = registry.describe(sm, arn)
    return out


@pytest.fixture
def target(bucket, tmp_path, trained, sm):
    endpoint = unique("scl-ep")
    group = unique("scl-grp")
    return {
        "endpoint": endpoint,
        "group": group,
        "versions": clone_versions(sm, group),
        "deploy_s3": f"s3://{bucket}/deployed",
        "out": tmp_path / "deploy.json",
    }


def deploy_args(t: dict, *extra: str) -> list[str]:
    return [
        "--endpoint-name",
        t["endpoint"],
        "--model-package-group",
        t["group"],
        "--deploy-s3",
        t["deploy_s3"],
        "--serving-role-arn",
        SERVING_ROLE_ARN,
        "--apigw-role-arn",
        APIGW_ROLE_ARN,
        "--out",
        str(t["out"]),
        "--wait-delay-seconds",
        "1",
        "--wait-max-attempts",
        "5",
        "--min-capacity",
        "1",
        "--max-capacity",
        "3",
        *extra,
    ]


def result(t: dict) -> dict:
    return json.loads(t["out"].read_text())


def live_arn(sm, endpoint: str) -> str | None:
    version, _ = registry.live_version(sm, endpoint)
    return version.arn if version else None


def test_merge_deploys_the_commits_version_approved_isolated_from_the_deploy_only_copy(
    target, sm, s3, gw, aas
):
    env = {"AWS_REGION": REGION, "GITHUB_SHA": "9" * 40, "GITHUB_ACTOR": "octocat"}
    assert deploy_main(deploy_args(target, "--commit", COMMIT), env=env) == 0
    good = target["versions"]["good"]
    approved = registry.describe(sm, good.arn)
    assert approved.status == "Approved"
    assert f"merge commit {'9' * 40} by @octocat" in approved.approval_description
    assert approved.metadata["merged-by"] == "octocat" and approved.metadata["commit"] == COMMIT
    assert live_arn(sm, target["endpoint"]) == good.arn

    endpoint = sm.describe_endpoint(EndpointName=target["endpoint"])
    model = sm.describe_model(ModelName=endpoint["EndpointConfigName"])
    assert model["ExecutionRoleArn"] == SERVING_ROLE_ARN
    copy = model["PrimaryContainer"]["ModelDataUrl"]
    assert copy == f"{target['deploy_s3']}/{target['endpoint']}/v{good.number}/model.tar.gz"
    assert model["PrimaryContainer"]["Image"] == good.image and "@sha256:" in good.image
    # moto's CreateModel drops EnableNetworkIsolation: the request deploy.py builds is checked instead
    spec = DeploySpec(region=REGION, endpoint_name=target["endpoint"], role_arn=SERVING_ROLE_ARN)
    assert endpoint_module.model_request(spec, "m", good, copy)["EnableNetworkIsolation"] is True
    bucket, key = copy.removeprefix("s3://").split("/", 1)
    import hashlib

    assert (
        hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()
        == good.artifact_sha256
    )

    out = result(target)
    assert out["changed"] is True and out["version"] == good.number and out["previous_version"] is None
    assert out["exit_code"] == 0 and out["gate"] == "no other version is live"
    variant = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])[
        "ProductionVariants"
    ][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    rid = f"endpoint/{target['endpoint']}/variant/AllTraffic"
    scalable = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert (scalable[0]["MinCapacity"], scalable[0]["MaxCapacity"]) == (1, 3)
    api = gw.get_rest_api(restApiId=out["api_id"])
    assert api["name"] == target["endpoint"]


def test_second_run_with_the_same_inputs_changes_nothing(target, sm, gw, capsys):
    args = deploy_args(target, "--commit", COMMIT)
    assert deploy_main(args) == 0
    first = result(target)
    deployments = len(gw.get_deployments(restApiId=first["api_id"])["items"])
    capsys.readouterr()
    assert deploy_main(args) == 0
    second = result(target)
    assert second["changed"] is False and second["actions"] == []
    assert second["previous_version"] == second["version"] == first["version"]
    assert "no changes" in capsys.readouterr().out
    assert len(gw.get_deployments(restApiId=first["api_id"])["items"]) == deployments


def test_update_is_blue_green_watched_by_our_alarms_and_keeps_the_scaled_instance_count(target, sm, aas):
    """Defects 3 and 4: the update keeps what auto scaling reached (RetainAllVariantProperties, honoured by
    our UpdateEndpoint patch), and names alarms that exist before it starts."""
    weak, good = target["versions"]["weak"], target["versions"]["good"]
    assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT)) == 0
    old_config = sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"]
    sm.update_endpoint_weights_and_capacities(
        EndpointName=target["endpoint"],
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    endpoint = sm.describe_endpoint(EndpointName=target["endpoint"])
    assert endpoint["EndpointConfigName"] != old_config
    assert endpoint["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    deployment = endpoint["LastDeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    alarms = [a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]]
    assert alarms == [f"{target['endpoint']}-5xx", f"{target['endpoint']}-latency-p99"]
    cw = boto3.client("cloudwatch", region_name=REGION)
    found = cw.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
    assert {a["MetricName"] for a in found} == {"Invocation5XXErrors", "ModelLatency"}
    out = result(target)
    assert (out["previous_version"], out["version"]) == (weak.number, good.number)
    assert live_arn(sm, target["endpoint"]) == good.arn
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]]
    assert old_config not in configs  # the previous version's config and model were deleted


def test_gate_rejects_a_worse_version_and_changes_nothing(target, sm, capsys):
    weak, good = target["versions"]["weak"], target["versions"]["good"]
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    config = sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"]
    capsys.readouterr()
    assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT)) == 3
    assert "worse than the live model" in capsys.readouterr().err
    rejected = registry.describe(sm, weak.arn)
    assert rejected.status == "Rejected" and "worse than the live model" in rejected.approval_description
    assert sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"] == config
    out = result(target)
    assert out["changed"] is False and out["previous_version"] == good.number and out["exit_code"] == 3
    assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT, "--force")) == 0  # by hand, on purpose
    assert live_arn(sm, target["endpoint"]) == weak.arn


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metadata": {"commit": "ab" * 20}}, "the job trained commit 01234567"),
        ({"metadata": {"artifact-sha256": "0" * 64}}, "the artifact changed after training"),
        ({"digest": "sha256:" + "1" * 64}, "not pinned to the version's digest"),
    ],
    ids=["another-commit", "artifact-changed", "other-image"],
)
def test_a_version_that_is_not_what_the_commit_trained_is_refused_and_rejected(
    target, sm, change, message, capsys
):
    """A package registered by a PR role claiming another commit, or whose artifact or image differs from
    what its training job produced (DescribeTrainingJob is SageMaker's record, not the PR's)."""
    good = target["versions"]["good"]
    desc = sm.describe_model_package(ModelPackageName=good.arn)
    spec = desc["InferenceSpecification"]
    if "digest" in change:
        spec["Containers"][0]["ImageDigest"] = change["digest"]
    metadata = {**desc["CustomerMetadataProperties"], **change.get("metadata", {})}
    arn = sm.create_model_package(
        ModelPackageGroupName=target["group"],
        InferenceSpecification=spec,
        CustomerMetadataProperties=metadata,
    )["ModelPackageArn"]
    assert deploy_main(deploy_args(target, "--commit", metadata["commit"])) == 3
    assert message in capsys.readouterr().err
    assert registry.describe(sm, arn).status == "Rejected"
    assert sm.list_endpoints(NameContains=target["endpoint"])["Endpoints"] == []
    assert result(target)["changed"] is False


def test_a_commit_with_no_registered_version_is_an_input_error_that_changed_nothing(target, capsys):
    assert deploy_main(deploy_args(target, "--commit", "abc1234")) == 2
    assert "no model package is registered for commit abc1234" in capsys.readouterr().err
    out = result(target)
    assert out["changed"] is False and out["exit_code"] == 2


def test_rollback_rejects_the_live_version_and_redeploys_the_previous_approved_one(target, sm, capsys):
    weak, good = target["versions"]["weak"], target["versions"]["good"]
    assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT)) == 0
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    assert deploy_main(deploy_args(target, "--rollback", "--reason", "p99 too high")) == 0
    assert live_arn(sm, target["endpoint"]) == weak.arn
    failed = registry.describe(sm, good.arn)
    assert failed.status == "Rejected" and "p99 too high" in failed.approval_description
    out = result(target)
    assert (
        out["rolled_back"] is True
        and out["version"] == weak.number
        and out["rolled_back_from"] == good.number
    )
    assert deploy_main(deploy_args(target, "--rollback")) == 2  # nothing Approved is left to go back to
    assert "no other Approved version" in capsys.readouterr().err


class _StubGateway:
    """Answers the smoke test like the gateway would for the version that is live: 200 with a probability,
    or 502 when ``failing`` names the live version's package. More lenient than API Gateway: no API key
    check, no mapping templates (the gateway stand-in of the infra tests covers those)."""

    def __init__(self, sm, endpoint: str):
        self.failing: str | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                bad = stub.failing is not None and live_arn(sm, endpoint) == stub.failing
                body = (
                    b'{"error": {"code": "model_unavailable"}}'
                    if bad
                    else b'{"predictions": [{"probability": 0.31}]}'
                )
                self.send_response(502 if bad else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_a_failed_smoke_test_rolls_back_to_the_previous_version_exit_4(target, sm, monkeypatch):
    weak, good = target["versions"]["weak"], target["versions"]["good"]
    stub = _StubGateway(sm, target["endpoint"])
    monkeypatch.setenv("SCL_EXECUTE_API_ENDPOINT_URL", stub.url)
    smoke = ("--smoke-test", "--smoke-attempts", "2", "--smoke-delay-seconds", "0")
    try:
        assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT, *smoke)) == 0
        assert result(target)["smoke"]["ok"] is True
        stub.failing = good.arn
        assert deploy_main(deploy_args(target, "--commit", COMMIT, *smoke)) == 4
    finally:
        stub.server.shutdown()
        stub.server.server_close()
    out = result(target)
    assert out["changed"] is True and out["rolled_back"] is True and out["smoke"]["status"] == 502
    assert out["rollback"]["version"] == weak.number and out["rollback"]["smoke"]["ok"] is True
    assert live_arn(sm, target["endpoint"]) == weak.arn
    assert registry.describe(sm, good.arn).status == "Rejected"


def test_a_failed_update_rejects_the_version_and_registers_scaling_again(target, sm, aas, monkeypatch):
    """Defect 7: an instance-type change releases auto scaling; the update fails (SageMaker's FailureReason is
    played by a stub: moto has no fleet to fail) and the old fleet gets its scaling back in a finally."""
    from scl_delay.aws import endpoint

    good = target["versions"]["good"]
    assert deploy_main(deploy_args(target, "--commit", WEAK_COMMIT)) == 0

    def fail(*args, **kwargs):
        raise endpoint.RollbackError("endpoint is InService on the old config", "alarm 5xx in alarm state")

    monkeypatch.setattr(endpoint, "roll_out", fail)
    assert deploy_main(deploy_args(target, "--commit", COMMIT, "--instance-type", "ml.m5.xlarge")) == 1
    out = result(target)
    assert out["failure_reason"] == "alarm 5xx in alarm state" and out["changed"] is True
    assert registry.describe(sm, good.arn).status == "Rejected"
    rid = f"endpoint/{target['endpoint']}/variant/AllTraffic"
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]


def test_list_shows_versions_status_and_which_is_live(target, capsys):
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    capsys.readouterr()
    assert deploy_main(deploy_args(target, "--list")) == 0
    out = capsys.readouterr().out
    good = target["versions"]["good"]
    live_line = next(line for line in out.splitlines() if line.startswith("▶"))
    assert f"{good.number}" in live_line and "Approved" in live_line and COMMIT[:8] in live_line
    assert "PendingManualApproval" in out


def test_teardown_keeps_the_registry_unless_purged_and_spares_look_alikes(target, sm, gw, aas):
    ep = target["endpoint"]
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    sm.create_model(
        ModelName=f"{ep}-handmade",
        ExecutionRoleArn=SERVING_ROLE_ARN,
        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    assert deploy_main(deploy_args(target, "--teardown")) == 0
    assert [
        m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"] if m["ModelName"].startswith(ep)
    ] == [f"{ep}-handmade"]
    assert ep not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert not [a for a in gw.get_rest_apis(limit=500)["items"] if a["name"] == ep]
    assert len(registry.versions(sm, target["group"])) == 2  # the history stays
    assert deploy_main(deploy_args(target, "--teardown", "--purge-registry")) == 0
    assert registry.versions(sm, target["group"]) == []


def test_deploy_refuses_to_take_over_an_endpoint_it_did_not_create(target, sm, capsys):
    ep = target["endpoint"]
    sm.create_model(
        ModelName=f"{ep}-m",
        ExecutionRoleArn=SERVING_ROLE_ARN,
        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/m"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{ep}-c",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{ep}-m",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=ep, EndpointConfigName=f"{ep}-c")
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 2
    assert "was not created by deploy.py" in capsys.readouterr().err
    assert registry.describe(sm, target["versions"]["good"].arn).status == "PendingManualApproval"


BASE = [
    "--deploy-s3",
    "s3://b-ok/deployed",
    "--serving-role-arn",
    SERVING_ROLE_ARN,
    "--apigw-role-arn",
    APIGW_ROLE_ARN,
]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            BASE[:2] + BASE[4:] + ["--commit", COMMIT],
            "missing --serving-role-arn (or $SAGEMAKER_SERVING_ROLE_ARN)",
        ),
        (BASE[:4] + ["--commit", COMMIT], "missing --apigw-role-arn (or $API_GATEWAY_ROLE_ARN)"),
        (BASE[2:] + ["--commit", COMMIT], "missing --deploy-s3 (or $DEPLOY_S3_PREFIX)"),
        (BASE, "missing --commit (or $GIT_COMMIT)"),
        (
            BASE + ["--commit", COMMIT, "--endpoint-name", "bad_name"],
            "--endpoint-name 'bad_name' is not a valid",
        ),
        (BASE + ["--commit", COMMIT, "--endpoint-name", "SCL-Delay"], "must be lower-case"),
        (
            BASE + ["--commit", COMMIT, "--min-capacity", "3", "--max-capacity", "2"],
            "need 1 <= --min-capacity",
        ),
        (BASE + ["--commit", COMMIT, "--tolerance", "lots"], "a numeric flag has a bad value"),
        (
            BASE + ["--commit", COMMIT, "--data-capture-percent", "150"],
            "--data-capture-percent must be 0..100",
        ),
        (["--teardown", "--deploy-s3", "bucket/x"], "--deploy-s3 must look like s3://bucket/prefix"),
        (["--purge-registry"], "--purge-registry goes with --teardown"),
    ],
)
def test_deploy_input_errors_are_named_before_any_aws_call(args, message, capsys):
    assert deploy_main(args, env={"AWS_REGION": REGION}, clients_factory=NoAws()) == 2
    assert message in capsys.readouterr().err


def test_an_image_tag_that_names_another_digest_is_refused():
    """The trained commit's tag must still name the version's digest. With the template's ECR repository
    (immutable tags) a tag cannot move; a stub plays a mutable registry where it did."""
    from scl_delay.aws.provenance import ProvenanceError, check_image_for_commit

    class _Ecr:
        def describe_images(self, **kwargs):
            assert kwargs["imageIds"] == [{"imageTag": COMMIT}] and kwargs["repositoryName"] == "scl-delay"
            return {"imageDetails": [{"imageDigest": "sha256:" + "9" * 64}]}

    version = registry.Version(
        arn="arn:aws:sagemaker:us-east-1:1:model-package/g/1",
        group="g",
        number=1,
        status="PendingManualApproval",
        image=f"123456789012.dkr.ecr.us-east-1.amazonaws.com/scl-delay@sha256:{'1' * 64}",
        image_digest=f"sha256:{'1' * 64}",
        artifact="s3://b/m.tar.gz",
    )
    with pytest.raises(ProvenanceError, match=f"the image tagged {COMMIT} is sha256:9999"):
        check_image_for_commit(_Ecr(), version, COMMIT)


def test_the_gate_reads_metrics_json_of_the_checked_artifact_when_sagemaker_scraped_none():
    """Defect 10: the fallback path (a metric missing from FinalMetricDataList) is reached and works."""
    import io
    import tarfile

    from scl_delay.aws.provenance import gate_metrics
    from scl_delay.aws.training_job import artifact_files

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps({"test": {"pr_auc": 0.61, "recall": 0.7}}).encode()
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    desc = {
        "AlgorithmSpecification": {"MetricDefinitions": [{"Name": "test:recall", "Regex": "x"}]},
        "FinalMetricDataList": [{"MetricName": "test:recall", "Value": 0.72}],
    }
    metrics = gate_metrics(desc, artifact_files(buffer.getvalue()))
    assert metrics["test:pr_auc"] == 0.61  # from the artifact
    assert metrics["test:recall"] == 0.72  # what SageMaker scraped wins


def test_data_capture_and_two_instances_for_availability_zones(target, sm):
    """As moto records the endpoint config (it keeps DataCaptureConfig as sent)."""
    args = deploy_args(target, "--commit", COMMIT, "--data-capture-percent", "25", "--instance-count", "2")
    args[args.index("--min-capacity") + 1] = "2"
    assert deploy_main(args) == 0
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"]
    )
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 2
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 25
    assert capture["DestinationS3Uri"] == f"{target['deploy_s3']}/{target['endpoint']}/data-capture"


ACCESS_LOG_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/apigateway/scl-delay/access"


def test_access_log_arn_sends_the_stage_access_log_to_the_log_group(target, gw):
    """Given as DescribeLogGroups' `arn` field gives it (with ":*"), the destination is stored without ":*",
    the form API Gateway's guide gives, with the JSON format (docs/verified-aws.md). More lenient than AWS:
    moto stores any destination string; it checks neither that the log group exists nor that API Gateway's
    account has the CloudWatch role (AWS::ApiGateway::Account) that AWS requires before it logs."""
    args = deploy_args(target, "--commit", COMMIT, "--access-log-arn", f"{ACCESS_LOG_ARN}:*")
    assert deploy_main(args) == 0
    stage = gw.get_stage(restApiId=result(target)["api_id"], stageName="prod")
    assert stage["accessLogSettings"] == {
        "destinationArn": ACCESS_LOG_ARN,
        "format": gateway.ACCESS_LOG_FORMAT,
    }


def test_without_access_log_arn_the_stage_has_no_access_log(target, gw, monkeypatch):
    """Neither the flag nor $GATEWAY_ACCESS_LOG_ARN: execution logging and metrics, no access log settings.
    More lenient than AWS: moto does not check that API Gateway's account has the CloudWatch role that
    execution logging needs on AWS."""
    monkeypatch.delenv("GATEWAY_ACCESS_LOG_ARN", raising=False)
    assert deploy_main(deploy_args(target, "--commit", COMMIT)) == 0
    stage = gw.get_stage(restApiId=result(target)["api_id"], stageName="prod")
    assert stage["methodSettings"]["*/*"]["loggingLevel"] == "ERROR"
    assert not stage.get("accessLogSettings")


@pytest.mark.parametrize(
    ("value", "via_env"),
    [
        ("/aws/apigateway/scl-delay/access", False),  # the log group's name, not its ARN
        (f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/amazon-apigateway-scl", False),
        (f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:", False),
        (f"arn:aws:logs:{REGION}::log-group:scl-delay", False),
        (f"{ACCESS_LOG_ARN}:log-stream:one", False),
        (f"arn:aws:iam::{ACCOUNT}:role/scl-delay-apigateway-invoke", True),
        (f"{ACCESS_LOG_ARN}\n", True),  # a regex ending in $ would take the newline a shell file leaves
    ],
    ids=["name-only", "firehose", "no-name", "no-account", "log-stream", "role-from-env", "newline"],
)
def test_a_malformed_access_log_arn_is_refused_before_any_aws_call(value, via_env, capsys):
    """Refused by deploy.py's own check, before any client exists. More lenient than AWS: moto's UpdateStage
    stores whatever destination it is sent, so without this check a bad value would deploy cleanly here; a
    Firehose stream (which AWS accepts when named amazon-apigateway-*) is outside what the flag takes."""
    args, env = BASE + ["--commit", COMMIT], {"AWS_REGION": REGION}
    if via_env:
        env["GATEWAY_ACCESS_LOG_ARN"] = value
    else:
        args += ["--access-log-arn", value]
    assert deploy_main(args, env=env, clients_factory=NoAws()) == 2
    err = capsys.readouterr().err
    assert "--access-log-arn must be a CloudWatch Logs log group ARN" in err and repr(value) in err


def test_access_log_arn_falls_back_to_its_environment_variable():
    """No AWS call (the spec only); moto plays no part, so nothing here is more lenient than AWS."""
    env = {"AWS_REGION": REGION, "GATEWAY_ACCESS_LOG_ARN": ACCESS_LOG_ARN}
    spec, _ = deploy_spec_from_args(BASE + ["--commit", COMMIT], env)
    assert spec.access_log_arn == ACCESS_LOG_ARN
