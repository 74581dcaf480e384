"""Predictions through the gateway URL: the REST API that gateway.ensure_gateway configured in moto (run as
the template's deploy role under enforced IAM), served by local_aws.gateway_standin, forwarding to the
SageMaker runtime stand-in, in front of a small container double that answers like the real ``serve``
(CSV or JSON 200, JSON 4xx, 500, or no answer in time).

Where the stand-ins are more lenient than AWS is listed in local_aws.gateway_standin and
local_aws.runtime_standin (no SigV4 between them, integration timeout = the runtime stand-in's, 3 s here)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from local_aws.gateway_standin import GatewayStandin
from local_aws.runtime_standin import RuntimeStandin
from scl_delay.aws import gateway

from .aws_helpers import ACCOUNT, REGION
from .test_iam_enforced import as_role, gateway_spec

ENDPOINT = "scl-delay"


class Container(BaseHTTPRequestHandler):
    """Answers by the request body: ok (CSV 200), json (JSON 200), bad (JSON 400), boom (500), slow
    (hangs)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if body == "slow":
            time.sleep(8)
            return
        status, ctype, out = {
            "ok": (200, "text/csv", "0.42\n"),
            "json": (200, "application/json", '{"predictions": [{"delay_probability": 0.42}]}'),
            "bad": (400, "application/json", '{"error": {"code": "bad_record", "message": "no Fecha-I"}}'),
            "boom": (500, "text/html", "<h1>Traceback</h1>"),
        }[body]
        payload = out.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def served(infra):
    container = ThreadingHTTPServer(("127.0.0.1", 0), Container)
    container.daemon_threads = True
    threading.Thread(target=container.serve_forever, daemon=True).start()
    runtime = RuntimeStandin(default=f"http://127.0.0.1:{container.server_address[1]}", timeout_s=3).start()
    lines: list[str] = []
    standin = GatewayStandin(boto3.session.Session(region_name=REGION), runtime.url, log=lines.append).start()
    deploy_gw = as_role(infra, "DeployRoleArn").client("apigateway")
    spec = gateway_spec(infra["ApiGatewayInvokeRoleArn"], api_name="scl-delay-standin")
    api = gateway.ensure_gateway(deploy_gw, spec, [])
    key = deploy_gw.get_api_key(apiKey=api["api_key_id"], includeValue=True)["value"]
    try:
        yield {
            "url": standin.invoke_url(api["api_id"], "prod", "predict"),
            "key": key,
            "lines": lines,
            "standin": standin,
            "api": api,
        }
    finally:
        gateway.delete_gateway(deploy_gw, spec)
        standin.stop()
        runtime.stop()
        container.shutdown()
        container.server_close()


def post(url: str, body: bytes, key: str | None, content_type: str = "text/csv") -> tuple[int, bytes, dict]:
    headers = {"Content-Type": content_type, **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def paced(served, body: bytes, key: str | None = "use-fixture", **kwargs) -> tuple[int, bytes, dict]:
    """One request with the fixture's key (its plan allows 20 req/s, burst 40: never throttled here)."""
    return post(served["url"], body, served["key"] if key == "use-fixture" else key, **kwargs)


def test_prediction_through_the_gateway_url_keeps_its_content_type(served):
    status, body, headers = paced(served, b"ok")
    assert (status, body, headers["Content-Type"]) == (200, b"0.42\n", "text/csv")
    status, body, headers = paced(served, b"json", content_type="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["predictions"][0]["delay_probability"] == 0.42
    assert any(line.startswith(f"gateway POST {served['url']} -> 200 0.42") for line in served["lines"])


def test_a_bad_record_gets_the_containers_400_and_json(served):
    status, body, headers = paced(served, b"bad")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "bad_record"


def test_a_failing_or_silent_container_is_502_or_504_json(served):
    status, body, _ = paced(served, b"boom")
    assert status == 502 and json.loads(body)["error"]["code"] == "model_error"
    status, body, _ = paced(served, b"slow")
    assert status == 504 and json.loads(body)["error"]["code"] == "model_timeout"


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_valid_api_key_the_answer_is_403(served, key):
    status, body, _ = paced(served, b"ok", key=key)
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})


def test_unknown_paths_are_403_missing_authentication_token(served):
    status, body, _ = post(served["url"].replace("/predict", "/other"), b"ok", served["key"])
    assert (status, json.loads(body)["message"]) == (403, "Missing Authentication Token")


def test_the_usage_plan_throttles_with_429(served, infra):
    """A plan of 0.1 req/s with a burst of 2: the third quick request is over it (no refill for 10 s)."""
    deploy_gw = as_role(infra, "DeployRoleArn").client("apigateway")
    spec = gateway_spec(
        infra["ApiGatewayInvokeRoleArn"], api_name="scl-delay-throttled", rate_limit=0.1, burst_limit=2
    )
    try:
        api = gateway.ensure_gateway(deploy_gw, spec, [])
        key = deploy_gw.get_api_key(apiKey=api["api_key_id"], includeValue=True)["value"]
        url = served["standin"].invoke_url(api["api_id"], "prod", "predict")
        answers = [post(url, b"ok", key) for _ in range(4)]
        assert [a[0] for a in answers] == [200, 200, 429, 429]
        assert json.loads(answers[2][1]) == {"message": "Too Many Requests"}
    finally:
        gateway.delete_gateway(deploy_gw, spec)


def test_a_trust_policy_with_a_source_condition_breaks_every_call(served, infra):
    """Issue 11 defect 1, as behaviour: with the old trust (aws:SourceArn condition), API Gateway cannot
    assume the integration role and every POST /predict is a 500."""
    iam = boto3.client("iam", region_name=REGION)
    old_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:*/*/POST/predict"}
                },
            }
        ],
    }
    role = "scl-delay-apigateway-invoke"
    good_trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(old_trust))
    try:
        status, body, _ = paced(served, b"ok")
        assert (status, json.loads(body)["message"]) == (500, "Internal server error")
    finally:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(good_trust))


def test_an_endpoint_the_invoke_role_may_not_call_is_a_500(infra):
    """The invoke role allows one endpoint: a gateway pointed at another gets AccessDenied from the runtime,
    which the mapping reports as our configuration error (500), not the caller's."""
    runtime = RuntimeStandin(default="http://127.0.0.1:9").start()
    standin = GatewayStandin(boto3.session.Session(region_name=REGION), runtime.url).start()
    deploy_gw = as_role(infra, "DeployRoleArn").client("apigateway")
    spec = gateway_spec(
        infra["ApiGatewayInvokeRoleArn"], endpoint_name="scl-delay-other", api_name="scl-delay-other"
    )
    try:
        api = gateway.ensure_gateway(deploy_gw, spec, [])
        key = deploy_gw.get_api_key(apiKey=api["api_key_id"], includeValue=True)["value"]
        status, body, _ = post(standin.invoke_url(api["api_id"], "prod", "predict"), b"ok", key)
        assert status == 500 and json.loads(body)["error"]["code"] == "gateway_error"
        assert runtime.calls == [], "the runtime was never reached"
    finally:
        gateway.delete_gateway(deploy_gw, spec)
        standin.stop()
        runtime.stop()
