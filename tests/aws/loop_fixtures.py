"""Fixtures of the GitHub-loop tests (test_stop_jobs, test_cancellation): the infra stack applied to the moto
server, which enforces IAM, so training jobs run as the stack's training role and read and write where that
role may; the PR training role's credentials; training data where that role reads it."""

from __future__ import annotations

import boto3
import pytest

from .aws_helpers import ACCOUNT, REGION, unique


@pytest.fixture(scope="module")
def infra(aws_env) -> dict[str, str]:
    """infra/scl-delay.yaml applied to moto (idempotent: the IAM tests apply the same stack); its outputs."""
    from local_aws import stack

    rendered = stack.render(
        stack.TEMPLATE, {"GitHubOwner": "acme", "GitHubRepo": "scl-delay"}, ACCOUNT, REGION
    )
    return stack.apply(rendered, boto3.session.Session(region_name=REGION))


@pytest.fixture(scope="module")
def pr_role_env(infra) -> dict[str, str]:
    """The AWS_* variables configure-aws-credentials leaves for pr-train's later steps: the PR training role."""
    from local_aws import iam_enforcement

    session = boto3.session.Session(region_name=REGION)
    return iam_enforcement.role_credentials(session, infra["PrTrainingRoleArn"], "pr-train-clean-up")


@pytest.fixture
def training_data(s3, infra, synthetic_csv) -> str:
    """The synthetic CSV under the stack's data prefix, where the training role reads."""
    uri = f"{infra['TrainingDataS3Uri'].rstrip('/')}/{unique('flights')}.csv"
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3.upload_file(str(synthetic_csv), bucket, key)
    return uri
