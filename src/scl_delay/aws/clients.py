"""The one place that builds boto3 clients.

Region comes from the caller (flag or ``AWS_REGION``/``AWS_DEFAULT_REGION``). Endpoints are never set here:
botocore reads ``AWS_ENDPOINT_URL`` and the per-service ``AWS_ENDPOINT_URL_<SERVICE>`` itself, which is how
tests point every client at a moto server and the runtime at its stand-in, with no code path of their own.
Retries use botocore's "standard" mode; ``AWS_MAX_ATTEMPTS`` overrides the attempt count.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property

import boto3
from botocore.config import Config

from ..errors import InputError

USER_AGENT = "scl-delay"


def region_from(env: Mapping[str, str], flag: str | None = None) -> str:
    region = flag or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise InputError("no AWS region: pass --region or set AWS_REGION")
    return region


class AwsClients:
    """Lazily built clients for one region, shared by one run."""

    def __init__(self, region: str, session: boto3.session.Session | None = None):
        self.region = region
        self._session = session or boto3.session.Session(region_name=region)
        attempts = os.environ.get("AWS_MAX_ATTEMPTS")
        retries = {"mode": "standard", **({"max_attempts": int(attempts)} if attempts else {})}
        self._config = Config(retries=retries, user_agent_extra=USER_AGENT)

    def client(self, service: str):
        return self._session.client(service, region_name=self.region, config=self._config)

    @cached_property
    def sagemaker(self):
        return self.client("sagemaker")

    @cached_property
    def runtime(self):
        return self.client("sagemaker-runtime")

    @cached_property
    def s3(self):
        return self.client("s3")

    @cached_property
    def logs(self):
        return self.client("logs")

    @cached_property
    def apigateway(self):
        return self.client("apigateway")

    @cached_property
    def autoscaling(self):
        return self.client("application-autoscaling")

    @cached_property
    def ecr(self):
        return self.client("ecr")

    @cached_property
    def cloudwatch(self):
        return self.client("cloudwatch")


def make_clients(region: str) -> AwsClients:
    return AwsClients(region)
