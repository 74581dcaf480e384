"""Pure pieces: resource names, and the rollback check (which moto cannot produce, so a stub plays it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scl_delay.aws import deploy as deploy_module
from scl_delay.aws.names import NAME_RE, check_name, training_job_name, versioned_name
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


@pytest.mark.parametrize("bad", ["", "-x", "x-", "a_b", "a" * 64, "ñandú"])
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
    clients = type("C", (), {"sagemaker": sm, "autoscaling": None})()
    spec = deploy_module.DeploySpec(region="us-east-1", endpoint_name="ep", state_s3="s3://b-ok/s")
    with pytest.raises(deploy_module.RollbackError, match="rolled back"):
        deploy_module.ensure_endpoint(clients, spec, "new", [], lambda m: None)
    assert ("update_endpoint", "new") in sm.calls and ("wait", "endpoint_in_service") in sm.calls
