"""Pure pieces: resource names, and the rollback check (which moto cannot produce, so a stub plays it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from scl_delay.aws import deploy as deploy_module
from scl_delay.aws import endpoint, ownership
from scl_delay.aws.names import (
    NAME_RE,
    check_name,
    check_role_arn,
    endpoint_log_group,
    job_prefix,
    partition,
    training_job_name,
    versioned_name,
)
from scl_delay.errors import InputError

NOW = datetime(2026, 11, 23, 2, 15, 0, tzinfo=UTC)


def test_training_job_name_is_valid_unique_per_second_and_traceable():
    name = training_job_name("0123456789abcdef", "42", now=NOW)
    assert name == "scl-delay-pr42-01234567-20261123-021500"
    assert NAME_RE.match(name)


def test_long_prefixes_are_shortened_not_the_identity():
    name = training_job_name("0123456789abcdef", "123456", prefix="x" * 80, now=NOW)
    assert len(name) == 63 and name.endswith("-pr123456-01234567-20261123-021500") and NAME_RE.match(name)


def test_versioned_names_are_deterministic_and_change_with_their_inputs():
    a = versioned_name("scl-delay", "0123456789", "job-a", "image:1")
    assert a == versioned_name("scl-delay", "0123456789", "job-a", "image:1")
    assert a != versioned_name("scl-delay", "0123456789", "job-b", "image:1")
    assert a.startswith("scl-delay-01234567-") and NAME_RE.match(a)


@pytest.mark.parametrize("bad", ["", "-x", "x-", "a_b", "a" * 64, "ñandú", "Scl-Delay"])
def test_invalid_names_are_input_errors(bad):
    with pytest.raises(InputError):
        check_name(bad)


class _Sm:
    """describe_endpoint answers InService on the old config after the update: an automatic rollback."""

    def __init__(self):
        self.calls = []

    def describe_endpoint(self, EndpointName):
        self.calls.append("describe_endpoint")
        return {
            "EndpointName": EndpointName,
            "EndpointArn": "arn:ep",
            "EndpointStatus": "InService",
            "EndpointConfigName": "old",
        }

    def list_tags(self, ResourceArn):
        return {
            "Tags": [
                {"Key": "scl-delay:managed-by", "Value": "deploy.py"},
                {"Key": "scl-delay:deployment", "Value": "ep"},
            ]
        }

    def describe_endpoint_config(self, EndpointConfigName):
        return {"ProductionVariants": [{"InstanceType": "ml.m5.large"}]}

    def update_endpoint(self, **kwargs):
        self.calls.append(("update_endpoint", kwargs["EndpointConfigName"]))

    def get_waiter(self, name):
        class _W:
            def wait(self_, **kwargs):
                self.calls.append(("wait", name))

        return _W()


def test_update_that_ends_in_service_on_the_old_config_is_reported_as_rolled_back():
    sm = _Sm()
    spec = deploy_module.DeploySpec(region="us-east-1", endpoint_name="ep")
    with pytest.raises(endpoint.RollbackError, match="rolled back"):
        endpoint.roll_out(sm, spec, "new", ["ep-5xx"], True, lambda m: None)
    assert ("update_endpoint", "new") in sm.calls and ("wait", "endpoint_in_service") in sm.calls


def test_update_request_keeps_the_scaled_count_unless_the_instance_type_changes():
    """Defect 3, as sent (AWS: without RetainAllVariantProperties the new fleet starts at
    InitialInstanceCount)."""
    spec = deploy_module.DeploySpec(region="us-east-1", endpoint_name="ep")
    same = endpoint.update_request(spec, "cfg", ["ep-5xx"], same_instance_type=True)
    assert same["RetainAllVariantProperties"] is True
    assert same["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DataCaptureConfig"}]
    assert same["DeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "ep-5xx"}]}
    other = endpoint.update_request(spec, "cfg", [], same_instance_type=False)
    assert (
        other["RetainAllVariantProperties"] is False
        and "AutoRollbackConfiguration" not in other["DeploymentConfig"]
    )


def test_a_missing_training_job_as_real_aws_answers_it_is_not_found():
    """Defect 8: AWS answers DescribeTrainingJob on a missing job with ValidationException "Requested resource
    not found" (aws/aws-sdk#165); moto says "Could not find training job". Both are "absent"."""
    for message in ("Requested resource not found.", "Could not find training job 'arn:...'."):
        error = ClientError(
            {"Error": {"Code": "ValidationException", "Message": message}}, "DescribeTrainingJob"
        )
        assert ownership.is_not_found(error)
    other = ClientError({"Error": {"Code": "ValidationException", "Message": "1 validation error"}}, "X")
    assert not ownership.is_not_found(other)


def test_partition_aware_names_and_arns():
    assert [partition(r) for r in ("us-east-1", "cn-north-1", "us-gov-west-1")] == [
        "aws",
        "aws-cn",
        "aws-us-gov",
    ]
    assert check_role_arn("arn:aws-cn:iam::123456789012:role/scl-delay-serving", "--x") is None
    assert "--x must be an IAM role ARN" in check_role_arn("arn:aws:iam::role/nope", "--x")
    assert endpoint_log_group("scl-delay") == "/aws/sagemaker/Endpoints/scl-delay"
    assert job_prefix("s3://b/out/", "0123456789", "12") == "s3://b/out/pr-12"
    assert job_prefix("s3://b/out", "0123456789abcdef", None) == "s3://b/out/commit-01234567"


def test_data_capture_goes_to_the_deploy_only_prefix():
    from scl_delay.aws.registry import Version

    spec = deploy_module.DeploySpec(
        region="us-east-1", endpoint_name="ep", deploy_s3="s3://b-ok/deployed", data_capture_percent=20
    )
    version = Version(
        arn="arn:aws:sagemaker:us-east-1:1:model-package/ep/1",
        group="ep",
        number=1,
        status="Approved",
        image="i",
        image_digest=None,
        artifact="a",
    )
    config = endpoint.endpoint_config_request(spec, "ep-v1", "ep-v1", version)
    capture = config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["DestinationS3Uri"] == "s3://b-ok/deployed/ep/data-capture"
    assert {"Key": "scl-delay:model-package", "Value": version.arn} in config["Tags"]
