"""Fixtures of the GitHub-loop tests (test_stop_jobs, test_cancellation), on top of the conftest's `infra`
(the template applied to the IAM-enforcing moto server): the PR training role's credentials, and training
data where the template's training role reads it."""

from __future__ import annotations

import boto3
import pytest

from .aws_helpers import REGION, unique


@pytest.fixture(scope="module")
def pr_role_env(infra) -> dict[str, str]:
    """The AWS_* variables configure-aws-credentials leaves for pr-train's later steps: the PR role's."""
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
