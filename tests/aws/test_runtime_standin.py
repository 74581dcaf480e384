"""InvokeEndpoint through boto3 -> the runtime stand-in (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) -> the real
`serve` on the model the local training backend produced.

moto's own sagemaker-runtime answers canned bytes for any endpoint; the stand-in replaces it so that the
request reaches a real container, and a container 4xx comes back as the ModelError (424,
OriginalStatusCode) real SageMaker callers get. API Gateway's mapping of that 424 back to 400 is checked as
configuration in test_deploy.py (moto cannot invoke gateway URLs).
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from local_aws.runtime_standin import RuntimeStandin

from .aws_helpers import REGION

RECORD = {
    "Fecha-I": "2017-01-01 23:30:00",
    "Vlo-I": "226",
    "Ori-I": "SCEL",
    "Des-I": "KMIA",
    "Emp-I": "AAL",
    "OPERA": "American Airlines",
    "TIPOVUELO": "I",
    "SIGLADES": "Miami",
    "MES": 1,
    "DIA": 1,
    "AÑO": 2017,
    "DIANOM": "Domingo",
}


@pytest.fixture(scope="module")
def runtime(serve_url, monkeypatch_module):
    standin = RuntimeStandin(routes={"scl-delay-live": serve_url}).start()
    monkeypatch_module.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", standin.url)
    client = boto3.client("sagemaker-runtime", region_name=REGION, config=Config(retries={"max_attempts": 1}))
    yield client, standin
    standin.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_invoke_endpoint_reaches_the_local_serve(runtime):
    client, standin = runtime
    response = client.invoke_endpoint(
        EndpointName="scl-delay-live",
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": [RECORD]}),
    )
    body = json.loads(response["Body"].read())
    assert response["ContentType"].startswith("application/json")
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert len(body["predictions"]) == 1 and 0 <= body["predictions"][0]["probability"] <= 1
    assert standin.calls[-1]["headers"]["Content-Type"] == "application/json"


def test_container_4xx_reaches_callers_as_model_error_424(runtime):
    client, _ = runtime
    bad = {**RECORD, "TIPOVUELO": "X"}
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(
            EndpointName="scl-delay-live",
            ContentType="application/json",
            Body=json.dumps({"instances": [bad]}),
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "TIPOVUELO" in error["OriginalMessage"]


def test_unknown_endpoint_is_a_validation_error(runtime):
    client, _ = runtime
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="application/json", Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
