"""The whole loop with each step's own role, IAM enforced: infra/scl-delay.yaml applied to moto, the PR role
runs training_job.py (the job itself runs as the training execution role), the deploy role runs deploy.py
with the serving and gateway roles of the template. Any call the template does not allow fails the test.

More lenient than AWS: what local_aws.iam_enforcement lists (several condition keys and the
ECR/Logs/CloudWatch/Auto Scaling resources not evaluated, trust policies not evaluated)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import boto3
import pytest

from local_aws import iam_enforcement, stack
from scl_delay.aws import registry
from scl_delay.aws.cli import deploy_main, training_job_main

from .aws_helpers import ACCOUNT, REGION, ROOT, push_image

ENDPOINT = "scl-delay"  # the name the template's deploy role is scoped to
E2E_COMMIT = "e2e0" * 10


@pytest.fixture(scope="module")
def account(aws_env):
    rendered = stack.render(
        stack.TEMPLATE, {"GitHubOwner": "acme", "GitHubRepo": "scl-delay"}, ACCOUNT, REGION
    )
    session = boto3.session.Session(region_name=REGION)
    outputs = dict(stack.apply(rendered, session))
    outputs["pr_env"] = iam_enforcement.role_credentials(session, outputs["PrTrainingRoleArn"], "pr")
    outputs["deploy_env"] = iam_enforcement.role_credentials(session, outputs["DeployRoleArn"], "deploy")
    return outputs


@contextmanager
def as_role(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_pr_role_trains_and_registers_and_the_deploy_role_ships_it(account, synthetic_csv, tmp_path, sm):
    session = boto3.session.Session(region_name=REGION)
    bucket, prefix = account["TrainingDataS3Uri"].removeprefix("s3://").split("/", 1)
    session.client("s3").upload_file(str(synthetic_csv), bucket, f"{prefix.rstrip('/')}/e2e/flights.csv")
    repository = account["EcrRepositoryUri"].split("/", 1)[1]
    push_image(session.client("ecr"), E2E_COMMIT, repository)  # what CI's docker push leaves

    training = [
        *("--image-uri", f"{account['EcrRepositoryUri']}:{E2E_COMMIT}"),
        *("--training-role-arn", account["TrainingExecutionRoleArn"]),
        *(
            "--data",
            f"{account['TrainingDataS3Uri'].rstrip('/')}/e2e/",
            "--output-s3",
            account["TrainingS3Prefix"],
        ),
        *("--hyperparameters", str(ROOT / "hyperparameters.json"), "--hp", "num_round=30"),
        *("--commit", E2E_COMMIT, "--pr-number", "901", "--repo", "acme/scl-delay", "--poll-seconds", "0.3"),
        *("--result", str(tmp_path / "training_result.json"), "--report", str(tmp_path / "report.md")),
    ]
    with as_role(account["pr_env"]):
        assert training_job_main(training) == 0
    result = json.loads((tmp_path / "training_result.json").read_text())
    assert result["model_package_status"] == "PendingManualApproval"
    assert result["model_artifact"].startswith(f"{account['TrainingS3Prefix'].rstrip('/')}/pr-901/")

    deploy = [
        *("--endpoint-name", ENDPOINT, "--deploy-s3", account["DeployS3Prefix"]),
        *("--serving-role-arn", account["ServingExecutionRoleArn"]),
        *("--apigw-role-arn", account["ApiGatewayInvokeRoleArn"]),
        *("--wait-delay-seconds", "1", "--out", str(tmp_path / "deploy.json")),
    ]
    with as_role(account["pr_env"]):  # the PR role can register, never ship
        assert deploy_main([*deploy, "--commit", E2E_COMMIT]) == 1
    assert registry.describe(sm, result["model_package_arn"]).status == "PendingManualApproval"
    try:
        with as_role(account["deploy_env"]):
            assert deploy_main([*deploy, "--commit", E2E_COMMIT, "--merged-by", "octocat"]) == 0
        outcome = json.loads((tmp_path / "deploy.json").read_text())
        assert outcome["changed"] is True and outcome["version"] == result["model_package_version"]
        assert registry.describe(sm, result["model_package_arn"]).status == "Approved"
        assert outcome["artifact"].startswith(f"{account['DeployS3Prefix'].rstrip('/')}/{ENDPOINT}/")
    finally:
        with as_role(account["deploy_env"]):
            assert deploy_main([*deploy, "--teardown"]) == 0
