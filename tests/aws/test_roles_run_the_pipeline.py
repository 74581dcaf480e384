"""The real scripts under the template's roles: training_job.py with the PR training role's credentials and
deploy.py with the deploy role's, against the moto server with IAM enforced. Every AWS call the code makes
must be allowed by infra/scl-delay.yaml; a PR's credentials cannot deploy.

Credentials: the session's ``infra`` fixture applies the template as the admin; each script gets
AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN from sts:AssumeRole on the role (what configure-aws-credentials
exports after AssumeRoleWithWebIdentity). The training job itself runs as the training execution role
(the local training backend assumes the job's RoleArn). Where this is more lenient than AWS is listed in
local_aws.iam_enforcement (trust policies, iam:PassRole and most condition keys are not evaluated; ECR,
Logs, CloudWatch, Application Auto Scaling and SNS are not matched against Resource)."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from local_aws import iam_enforcement

from .aws_helpers import COMMIT, REGION, ROOT, training_args, unique, venv_env

ENDPOINT = "scl-delay"  # the template's endpoint and model package group


def as_role_env(infra: dict, output: str) -> dict[str, str]:
    return iam_enforcement.role_credentials(boto3.session.Session(region_name=REGION), infra[output], "ci")


def run_as(script: str, args: list[str], creds: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=venv_env(**creds, **env),
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def pr_trained(infra, images, synthetic_csv, s3, tmp_path_factory):
    """training_job.py as the PR role: data seeded under data/ by the admin, as the setup does."""
    bucket = infra["ArtifactBucketName"]
    data_key = f"data/{unique('flights')}.csv"
    s3.upload_file(str(synthetic_csv), bucket, data_key)
    out = tmp_path_factory.mktemp("pr-role")
    args = training_args(
        bucket,
        out,
        f"s3://{bucket}/{data_key}",
        COMMIT,
        ["num_round=5"],
        group=ENDPOINT,
        pr="77",
        endpoint=ENDPOINT,
    )
    args[args.index("--training-role-arn") + 1] = infra["TrainingExecutionRoleArn"]
    proc = run_as("training_job.py", args, as_role_env(infra, "PrTrainingRoleArn"))
    return {"proc": proc, "out": out}


def test_training_job_runs_under_the_pr_role_and_registers_a_pending_version(pr_trained, sm):
    proc = pr_trained["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((pr_trained["out"] / "training_result.json").read_text())
    assert result["status"] == "Completed"
    assert "/training/pr-77/" in result["model_artifact"]
    packages = sm.list_model_packages(ModelPackageGroupName=ENDPOINT)["ModelPackageSummaryList"]
    assert any(p["ModelApprovalStatus"] == "PendingManualApproval" for p in packages)


def _deploy_args(infra: dict, tmp_path, *extra: str) -> list[str]:
    return [
        "--endpoint-name",
        ENDPOINT,
        "--model-package-group",
        ENDPOINT,
        "--deploy-s3",
        infra["DeployS3Prefix"],
        "--serving-role-arn",
        infra["ServingExecutionRoleArn"],
        "--apigw-role-arn",
        infra["ApiGatewayInvokeRoleArn"],
        "--out",
        str(tmp_path / "deploy.json"),
        "--wait-delay-seconds",
        "1",
        "--wait-max-attempts",
        "5",
        "--min-capacity",
        "1",
        "--max-capacity",
        "2",
        *extra,
    ]


def test_a_pr_role_cannot_deploy(pr_trained, infra, tmp_path, sm):
    assert pr_trained["proc"].returncode == 0
    proc = run_as(
        "deploy.py",
        _deploy_args(infra, tmp_path, "--commit", COMMIT),
        as_role_env(infra, "PrTrainingRoleArn"),
    )
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert any(word in said for word in ("AccessDenied", "not authorized", "Forbidden")), said
    packages = sm.list_model_packages(ModelPackageGroupName=ENDPOINT)["ModelPackageSummaryList"]
    assert all(p["ModelApprovalStatus"] != "Approved" for p in packages), "nothing approved by a PR"


def test_deploy_runs_under_the_deploy_role_approves_and_tears_down(pr_trained, infra, tmp_path, sm):
    assert pr_trained["proc"].returncode == 0
    creds = as_role_env(infra, "DeployRoleArn")
    env = {"GITHUB_SHA": "9" * 40, "GITHUB_ACTOR": "octocat"}
    proc = run_as("deploy.py", _deploy_args(infra, tmp_path, "--commit", COMMIT), creds, **env)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = json.loads((tmp_path / "deploy.json").read_text())
        version = sm.describe_model_package(
            ModelPackageName=f"{infra['ModelPackageGroupArn'].replace('model-package-group', 'model-package')}"
            f"/{out['version']}"
        )
        assert version["ModelApprovalStatus"] == "Approved"
        assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"
    finally:
        down = run_as("deploy.py", _deploy_args(infra, tmp_path, "--teardown"), creds)
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
