"""API Gateway's answer to each thing SageMaker can say (issue 11 defect 5), with the integration responses
that gateway.ensure_gateway stored in moto, read back through the API Gateway API, and their mapping
templates rendered by a real Velocity engine (airspeed, which LocalStack uses for API Gateway), with the
gateway stand-in's own selection and rendering (local_aws.gateway_standin).

What API Gateway does and this test reproduces: for an AWS integration the selection patterns are
matched (whole string, Java regex) against SageMaker's HTTP status; no match selects the default
response; ``$context.responseOverride.status`` replaces the method response's status.
Where this is more lenient than AWS: moto does not validate the templates or the responseParameters
mapping expressions; the Content-Type pass-through is checked as the stored mapping expression, and the
runtime stand-in's timeout answer is checked against the shape SageMaker documents, not a live endpoint."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import boto3
import pytest

from local_aws.gateway_standin import render, select_response
from local_aws.runtime_standin import RuntimeStandin
from scl_delay.aws import gateway

from .aws_helpers import ACCOUNT, REGION

ROLE = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-apigateway-invoke"
ACCESS_LOG_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/apigateway/scl-delay-mapping/access"


@pytest.fixture(scope="module")
def stored(aws_env):
    """The integration responses as moto stores them after ensure_gateway, keyed by method status."""
    gw = boto3.client("apigateway", region_name=REGION)
    spec = SimpleNamespace(
        region=REGION,
        endpoint_name="scl-delay-mapping",
        api_name="scl-delay-mapping-test",
        stage="prod",
        apigw_role_arn=ROLE,
        rate_limit=5.0,
        burst_limit=10,
        access_log_arn=ACCESS_LOG_ARN + ":*",
    )
    api = gateway.ensure_gateway(gw, spec, [])
    again: list[str] = []
    gateway.ensure_gateway(gw, spec, again)
    integration = gw.get_integration(
        restApiId=api["api_id"], resourceId=api["resource_id"], httpMethod="POST"
    )
    responses = {}
    for status in integration["integrationResponses"]:
        responses[status] = gw.get_integration_response(
            restApiId=api["api_id"], resourceId=api["resource_id"], httpMethod="POST", statusCode=status
        )
    method = gw.get_method(restApiId=api["api_id"], resourceId=api["resource_id"], httpMethod="POST")
    stage = gw.get_stage(restApiId=api["api_id"], stageName="prod")
    yield {"responses": responses, "method": method, "stage": stage, "second_run_actions": again}
    gateway.delete_gateway(gw, spec)


def answer(stored, sagemaker_status: int, body: bytes) -> tuple[int, bytes]:
    """What the caller gets: selection by SageMaker's status, then the template (Velocity) of that
    response."""
    chosen = select_response(stored["responses"], sagemaker_status)
    template = (chosen.get("responseTemplates") or {}).get("application/json")
    if template is None:
        return int(chosen["statusCode"]), body
    text, override = render(template, body)
    return int(override["status"] or chosen["statusCode"]), text.encode()


def model_error(original: int, message: str = "") -> bytes:
    return json.dumps(
        {"ErrorCode": "CLIENT_ERROR_FROM_MODEL", "OriginalStatusCode": original, "OriginalMessage": message}
    ).encode()


@pytest.mark.parametrize("container_status", [400, 406, 413, 415])
def test_container_4xx_reaches_the_caller_with_its_status_and_json_body(stored, container_status):
    body = json.dumps({"error": {"code": "bad_record", "message": "field X", "status": container_status}})
    status, out = answer(stored, 424, model_error(container_status, body))
    assert status == container_status
    assert json.loads(out) == json.loads(body)


def test_container_timeout_or_crash_is_504_json(stored):
    status, out = answer(stored, 424, model_error(0))
    assert status == 504
    assert json.loads(out)["error"]["code"] == "model_timeout"


@pytest.mark.parametrize("container_status", [500, 503])
def test_container_5xx_is_502_json(stored, container_status):
    status, out = answer(stored, 424, model_error(container_status, "Traceback ..."))
    assert status == 502
    assert json.loads(out)["error"]["code"] == "model_error"
    assert b"Traceback" not in out, "the container's internals stay in its log"


@pytest.mark.parametrize(
    ("sagemaker_status", "caller_status", "code"),
    [
        (429, 429, "throttled"),
        (400, 500, "gateway_error"),
        (403, 500, "gateway_error"),
        (503, 502, "model_unavailable"),
    ],
)
def test_sagemaker_errors_map_to_json(stored, sagemaker_status, caller_status, code):
    status, out = answer(stored, sagemaker_status, b'{"message": "x"}')
    assert status == caller_status
    assert json.loads(out)["error"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [b'{"__type": "ThrottlingException", "message": "Rate exceeded"}', b'{"message": "Rate exceeded"}'],
)
def test_runtime_throttling_answered_as_400_is_429(stored, body):
    """AWS's common ThrottlingException is HTTP 400 (botocore's InvokeEndpoint model lists only
    ModelNotReadyException as 429): the 4xx template tells it from a ValidationError by the error body.
    The exact body of a throttled InvokeEndpoint is not verified on an account."""
    status, out = answer(stored, 400, body)
    assert status == 429 and json.loads(out)["error"]["code"] == "throttled"


def test_success_passes_the_body_and_its_content_type_through(stored):
    status, out = answer(stored, 200, b"0.42\n")
    assert (status, out) == (200, b"0.42\n")
    ok = stored["responses"]["200"]
    assert ok["responseParameters"] == {
        "method.response.header.Content-Type": "integration.response.header.Content-Type"
    }
    assert (
        "method.response.header.Content-Type"
        in stored["method"]["methodResponses"]["200"]["responseParameters"]
    )
    for status, response in stored["responses"].items():
        if status != "200":
            assert response["responseParameters"] == {
                "method.response.header.Content-Type": "'application/json'"
            }


def test_runtime_standin_reports_a_timed_out_container_as_sagemaker_does():
    """No HTTP answer within the timeout: 424 ModelError with OriginalStatusCode 0 (SageMaker's
    "Received server error (0) ... timed out"). The stand-in's timeout is 1 s here (only the silent
    container goes through it), SageMaker's 60 s."""

    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            time.sleep(3)

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    standin = RuntimeStandin(default=f"http://127.0.0.1:{upstream.server_address[1]}", timeout_s=1).start()
    try:
        request = urllib.request.Request(
            f"{standin.url}/endpoints/scl-delay/invocations",
            data=b"x",
            method="POST",
            headers={"Content-Type": "text/csv"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)
        assert e.value.code == 424
        assert e.value.headers["x-amzn-ErrorType"] == "ModelError"
        error = json.loads(e.value.read())
        assert error["OriginalStatusCode"] == 0 and "timed out" in error["Message"]
    finally:
        standin.stop()
        upstream.shutdown()
        upstream.server_close()


def test_stage_logs_errors_and_metrics_and_writes_the_access_log(stored):
    """Issue 11 item 11: execution logging (ERROR) and metrics on every method, the access log as one JSON
    line per request into the template's log group (ARN given without ":*", as API Gateway wants it).
    moto does not check that the account's CloudWatch role is set, which AWS requires for execution logs."""
    settings = stored["stage"]["methodSettings"]["*/*"]
    assert settings["loggingLevel"] == "ERROR" and settings["metricsEnabled"] is True
    access = stored["stage"]["accessLogSettings"]
    assert access["destinationArn"] == ACCESS_LOG_ARN
    fields = json.loads(access["format"])
    assert {"requestId", "status", "integrationStatus", "latencyMs"} <= set(fields)
    assert stored["second_run_actions"] == [], "a second run with the same inputs changes nothing"


@pytest.mark.parametrize(
    ("region", "uri", "url"),
    [
        (
            "us-east-1",
            "arn:aws:apigateway:us-east-1:",
            "https://a1.execute-api.us-east-1.amazonaws.com/prod/predict",
        ),
        (
            "cn-north-1",
            "arn:aws-cn:apigateway:cn-north-1:",
            "https://a1.execute-api.cn-north-1.amazonaws.com.cn/prod/predict",
        ),
        (
            "us-gov-west-1",
            "arn:aws-us-gov:apigateway:us-gov-west-1:",
            "https://a1.execute-api.us-gov-west-1.amazonaws.com/prod/predict",
        ),
    ],
)
def test_integration_uri_and_invoke_url_follow_the_partition(region, uri, url):
    assert gateway.integration_uri(region, "ep") == f"{uri}runtime.sagemaker:path/endpoints/ep/invocations"
    assert gateway.invoke_url("a1", region, "prod") == url
