"""deploy.py against a real moto server.

What moto cannot do, and what these tests check instead:
- endpoints are InService at once and no container runs: the tests check the Model/EndpointConfig/endpoint
  recorded in moto (image, artifact, variant), not a running fleet;
- UpdateEndpoint is not in moto 5.2: the moto server runs our patch (local_aws.moto_update_endpoint), which
  keeps the DeploymentConfig sent, so the blue/green + rollback-alarm request is checked, not performed;
- API Gateway invoke URLs cannot be called in moto's server mode: the tests check the REST API's method,
  integration (URI, role, response mappings), stage, API key and usage plan as configured.
"""

from __future__ import annotations

import json

import pytest

from scl_delay.aws.cli import deploy_main

from .aws_helpers import APIGW_ROLE_ARN, COMMIT, REGION, ROLE_ARN, NoAws, unique


def deploy_args(endpoint: str, state: str, out, *extra: str) -> list[str]:
    return [
        "--endpoint-name",
        endpoint,
        "--state-s3",
        state,
        "--role-arn",
        ROLE_ARN,
        "--apigw-role-arn",
        APIGW_ROLE_ARN,
        "--out",
        str(out),
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


@pytest.fixture
def target(bucket, tmp_path):
    endpoint = unique("scl-ep")
    return {
        "endpoint": endpoint,
        "state": f"s3://{bucket}/{unique('state')}",
        "out": tmp_path / "deploy.json",
        "key": None,
    }


def _live(s3, state: str) -> dict:
    bucket, prefix = state.removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/live.json")["Body"].read())


def _names(call, key: str, field: str, prefix: str) -> list[str]:
    """moto ignores NameContains on some list calls: filter here (deploy.py checks tags, not names)."""
    return sorted(i[field] for i in call(MaxResults=100)[key] if i[field].startswith(prefix))


def _api(gw, name: str) -> dict:
    return next(a for a in gw.get_rest_apis(limit=500)["items"] if a["name"] == name)


def test_first_deploy_creates_endpoint_scaling_gateway_and_records_live(
    target, trained, sm, gw, aas, s3, tmp_path, monkeypatch
):
    """moto marks the endpoint InService at once and cannot call the gateway: the resources are checked as
    recorded (model image and artifact, variant, scaling target and policy, method, integration, stage, key, plan)."""
    github_output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(github_output))
    good = trained["good"]
    ep = target["endpoint"]
    assert (
        deploy_main(deploy_args(ep, target["state"], target["out"], "--training-job", good["job_name"])) == 0
    )

    endpoint = sm.describe_endpoint(EndpointName=ep)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic",
        "ml.m5.large",
        1,
    )
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == good["model_artifact"]
    assert model["PrimaryContainer"]["Image"] == good["image"]
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert endpoint["EndpointConfigName"].startswith(f"{ep}-01234567-")  # traceable to the commit

    rid = f"endpoint/{ep}/variant/AllTraffic"
    target_ = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])[
        "ScalableTargets"
    ][0]
    assert (target_["MinCapacity"], target_["MaxCapacity"]) == (1, 3)
    policy = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)["ScalingPolicies"][0]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )

    api = _api(gw, ep)
    predict = next(r for r in gw.get_resources(restApiId=api["id"])["items"] if r["path"] == "/predict")
    method = gw.get_method(restApiId=api["id"], resourceId=predict["id"], httpMethod="POST")
    assert method["apiKeyRequired"] is True
    integration = method["methodIntegration"]
    assert integration["type"] == "AWS"  # direct AWS service integration: no Lambda in the path
    assert (
        integration["uri"] == f"arn:aws:apigateway:{REGION}:runtime.sagemaker:path/endpoints/{ep}/invocations"
    )
    assert integration["credentials"] == APIGW_ROLE_ARN
    responses = integration["integrationResponses"]
    assert responses["400"]["selectionPattern"] == "424"  # ModelError from a container 4xx -> caller's 4xx
    template = responses["400"]["responseTemplates"]["application/json"]
    assert "$input.path('$.OriginalMessage')" in template  # the container's own error body
    assert (
        "#set($context.responseOverride.status = $original)" in template
    )  # and its own status (413, 415...)
    assert gw.get_stage(restApiId=api["id"], stageName="prod")["stageName"] == "prod"

    result = json.loads(target["out"].read_text())
    assert result["invoke_url"] == f"https://{api['id']}.execute-api.{REGION}.amazonaws.com/prod/predict"
    plan = next(p for p in gw.get_usage_plans()["items"] if p["name"] == f"{ep}-plan")
    assert plan["throttle"] == {"rateLimit": 20.0, "burstLimit": 40}
    assert {"apiId": api["id"], "stage": "prod"} in [
        {k: s[k] for k in ("apiId", "stage")} for s in plan["apiStages"]
    ]
    keys = gw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert [k["id"] for k in keys] == [result["api_key_id"]]
    assert f"invoke_url={result['invoke_url']}" in github_output.read_text()
    assert f"api_key_id={result['api_key_id']}" in github_output.read_text()

    live = _live(s3, target["state"])
    assert live["training_job"] == good["job_name"] and live["endpoint_name"] == ep
    assert live["metrics"] == good["final_metrics"]
    assert live["api"]["invoke_url"] == result["invoke_url"]


def test_second_run_with_same_inputs_changes_nothing(target, trained, sm, gw, s3, capsys):
    """Checked through what moto records: no create/update call is made, no new gateway deployment, same live record."""
    args = deploy_args(
        target["endpoint"], target["state"], target["out"], "--training-job", trained["good"]["job_name"]
    )
    assert deploy_main(args) == 0
    first = json.loads(target["out"].read_text())
    live_before = _live(s3, target["state"])
    deployments = len(gw.get_deployments(restApiId=first["api_id"])["items"])
    models = _names(sm.list_models, "Models", "ModelName", target["endpoint"])
    capsys.readouterr()

    assert deploy_main(args) == 0
    second = json.loads(target["out"].read_text())
    assert second["changed"] is False and second["actions"] == []
    assert "no changes" in capsys.readouterr().out
    assert second["invoke_url"] == first["invoke_url"] and second["api_key_id"] == first["api_key_id"]
    assert len(gw.get_deployments(restApiId=first["api_id"])["items"]) == deployments
    assert _names(sm.list_models, "Models", "ModelName", target["endpoint"]) == models
    assert _live(s3, target["state"]) == live_before


def test_update_deploy_is_blue_green_with_rollback_alarms_and_cleans_the_old_version(target, trained, sm, s3):
    """UpdateEndpoint runs on our moto patch: the DeploymentConfig is recorded, not executed."""
    weak, good = trained["weak"], trained["good"]
    assert (
        deploy_main(
            deploy_args(
                target["endpoint"], target["state"], target["out"], "--training-job", weak["job_name"]
            )
        )
        == 0
    )
    old_config = sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"]
    assert (
        deploy_main(
            deploy_args(
                target["endpoint"],
                target["state"],
                target["out"],
                "--training-job",
                good["job_name"],
                "--rollback-alarm",
                "scl-delay-5xx",
            )
        )
        == 0
    )
    endpoint = sm.describe_endpoint(EndpointName=target["endpoint"])
    assert endpoint["EndpointConfigName"] != old_config
    deployment = endpoint["LastDeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert deployment["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "scl-delay-5xx"}]
    names = _names(sm.list_endpoint_configs, "EndpointConfigs", "EndpointConfigName", target["endpoint"])
    assert names == [endpoint["EndpointConfigName"]]  # the previous config and model were deleted
    assert _names(sm.list_models, "Models", "ModelName", target["endpoint"]) == [
        endpoint["EndpointConfigName"]
    ]
    result = json.loads(target["out"].read_text())
    assert result["previous_training_job"] == weak["job_name"] and result["training_job"] == good["job_name"]
    assert _live(s3, target["state"])["training_job"] == good["job_name"]


def test_gate_refuses_a_worse_model_and_force_overrides_it(target, trained, sm, s3, capsys):
    """The two models' metrics are real (their jobs ran `train` through the local backend); the refusal is
    checked before any SageMaker call, so nothing moto fakes is involved."""
    weak, good = trained["weak"], trained["good"]
    assert weak["final_metrics"]["test:pr_auc"] < good["final_metrics"]["test:pr_auc"] - 0.01
    assert (
        deploy_main(
            deploy_args(
                target["endpoint"], target["state"], target["out"], "--training-job", good["job_name"]
            )
        )
        == 0
    )
    live_config = sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"]
    capsys.readouterr()

    assert (
        deploy_main(
            deploy_args(
                target["endpoint"], target["state"], target["out"], "--training-job", weak["job_name"]
            )
        )
        == 3
    )
    err = capsys.readouterr().err
    assert "test:pr_auc" in err and "worse than the live model" in err and "--force" in err
    assert sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"] == live_config
    assert _live(s3, target["state"])["training_job"] == good["job_name"]
    refused = json.loads(target["out"].read_text())
    assert refused["previous_training_job"] == good["job_name"] and "gate refused" in refused["error"]

    assert (
        deploy_main(
            deploy_args(
                target["endpoint"],
                target["state"],
                target["out"],
                "--training-job",
                weak["job_name"],
                "--force",
            )
        )
        == 0
    )
    assert sm.describe_endpoint(EndpointName=target["endpoint"])["EndpointConfigName"] != live_config
    assert _live(s3, target["state"])["training_job"] == weak["job_name"]


def test_deploy_picks_the_job_recorded_for_the_merged_commit(trained, training_state, tmp_path, sm):
    endpoint = unique("scl-ep")
    assert deploy_main(deploy_args(endpoint, training_state, tmp_path / "d.json", "--commit", COMMIT)) == 0
    assert json.loads((tmp_path / "d.json").read_text())["training_job"] == trained["good"]["job_name"]
    assert deploy_main(deploy_args(endpoint, training_state, tmp_path / "d.json", "--teardown")) == 0


def test_teardown_removes_only_what_deploy_created(target, trained, sm, gw, aas, s3):
    """Deletion is checked in moto's records; a look-alike resource without our tags must survive."""
    ep = target["endpoint"]
    assert (
        deploy_main(
            deploy_args(ep, target["state"], target["out"], "--training-job", trained["good"]["job_name"])
        )
        == 0
    )
    # look-alikes that deploy.py did not create: same name prefix, no tags
    sm.create_model(
        ModelName=f"{ep}-handmade",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"},
    )
    other_api = gw.create_rest_api(name=f"{ep}-other")
    other_key = gw.create_api_key(name=f"{ep}-key-other", enabled=True)

    assert deploy_main(deploy_args(ep, target["state"], target["out"], "--teardown")) == 0

    assert _names(sm.list_models, "Models", "ModelName", ep) == [f"{ep}-handmade"]
    assert _names(sm.list_endpoint_configs, "EndpointConfigs", "EndpointConfigName", ep) == []
    assert ep not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert [a["id"] for a in gw.get_rest_apis(limit=500)["items"] if a["name"].startswith(ep)] == [
        other_api["id"]
    ]
    assert [k["id"] for k in gw.get_api_keys(nameQuery=ep)["items"]] == [other_key["id"]]
    assert not [p for p in gw.get_usage_plans()["items"] if p["name"] == f"{ep}-plan"]
    rid = f"endpoint/{ep}/variant/AllTraffic"
    assert (
        aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]
        == []
    )
    bucket, prefix = target["state"].removeprefix("s3://").split("/", 1)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/live.json").get("KeyCount", 0) == 0

    assert (
        deploy_main(deploy_args(ep, target["state"], target["out"], "--teardown")) == 0
    )  # nothing left: fine


def test_deploy_refuses_to_take_over_an_endpoint_it_did_not_create(target, trained, sm, capsys):
    ep = target["endpoint"]
    sm.create_model(
        ModelName=f"{ep}-m",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"},
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
    assert (
        deploy_main(
            deploy_args(ep, target["state"], target["out"], "--training-job", trained["good"]["job_name"])
        )
        == 2
    )
    assert "was not created by deploy.py" in capsys.readouterr().err
    assert sm.describe_endpoint(EndpointName=ep)["EndpointConfigName"] == f"{ep}-c"


def test_unknown_or_unrecorded_training_job_is_an_input_error(target, capsys):
    assert (
        deploy_main(
            deploy_args(target["endpoint"], target["state"], target["out"], "--training-job", "no-such-job")
        )
        == 2
    )
    assert "training job no-such-job does not exist" in capsys.readouterr().err
    assert (
        deploy_main(deploy_args(target["endpoint"], target["state"], target["out"], "--commit", "abc123"))
        == 2
    )
    assert "no training job is recorded for commit abc123" in capsys.readouterr().err
    result = json.loads(target["out"].read_text())  # written on this failure too: the workflow reads it
    assert "no training job is recorded for commit abc123" in result["error"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--state-s3", "s3://b-ok/state", "--apigw-role-arn", APIGW_ROLE_ARN, "--training-job", "j"],
            "missing --role-arn (or $SAGEMAKER_ROLE_ARN)",
        ),
        (
            ["--state-s3", "s3://b-ok/state", "--role-arn", ROLE_ARN, "--training-job", "j"],
            "missing --apigw-role-arn (or $API_GATEWAY_ROLE_ARN)",
        ),
        (
            ["--role-arn", ROLE_ARN, "--apigw-role-arn", APIGW_ROLE_ARN, "--training-job", "j"],
            "missing --state-s3 (or $SCL_STATE_S3_URI)",
        ),
        (
            ["--state-s3", "s3://b-ok/state", "--role-arn", ROLE_ARN, "--apigw-role-arn", APIGW_ROLE_ARN],
            "missing --training-job (or $TRAINING_JOB_NAME), or --commit",
        ),
        (
            [
                "--state-s3",
                "s3://b-ok/state",
                "--role-arn",
                ROLE_ARN,
                "--apigw-role-arn",
                APIGW_ROLE_ARN,
                "--training-job",
                "j",
                "--endpoint-name",
                "bad_name",
            ],
            "--endpoint-name 'bad_name' is not a valid",
        ),
        (
            [
                "--state-s3",
                "s3://b-ok/state",
                "--role-arn",
                ROLE_ARN,
                "--apigw-role-arn",
                APIGW_ROLE_ARN,
                "--training-job",
                "j",
                "--min-capacity",
                "3",
                "--max-capacity",
                "2",
            ],
            "need 1 <= --min-capacity",
        ),
        (
            [
                "--state-s3",
                "s3://b-ok/state",
                "--role-arn",
                ROLE_ARN,
                "--apigw-role-arn",
                APIGW_ROLE_ARN,
                "--training-job",
                "j",
                "--tolerance",
                "lots",
            ],
            "a numeric flag has a bad value",
        ),
        (["--state-s3", "bucket/state", "--teardown"], "--state-s3 must look like s3://bucket/prefix"),
    ],
)
def test_deploy_input_errors_are_named_before_any_aws_call(args, message, capsys):
    assert deploy_main(args, env={"AWS_REGION": REGION}, clients_factory=NoAws()) == 2
    assert message in capsys.readouterr().err
