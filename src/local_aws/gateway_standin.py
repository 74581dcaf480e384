"""An API Gateway stand-in: serves the REST API that deploy.py configured in moto, so a prediction goes
through the gateway URL as on AWS (moto cannot invoke execute-api URLs in server mode).

    POST {stand-in}/{api_id}/{stage}/{path}    (what smoke.py builds from $SCL_EXECUTE_API_ENDPOINT_URL)

For every request it reads the configuration back through the API Gateway API (nothing is cached, so what
is served is what deploy.py left in moto): the stage, the resource and method, the API key requirement and
the usage plans that hold the key for that stage, the integration (type, URI, credentials, request
parameters and templates) and its responses (selection patterns, templates, response parameters). Then,
as API Gateway does:

- method or resource unknown: 403 ``{"message": "Missing Authentication Token"}``; API key missing, unknown,
  disabled or not in a usage plan of the stage: 403 ``{"message": "Forbidden"}``; over the usage plan's
  throttle (token bucket: rateLimit per second, burstLimit): 429 ``{"message": "Too Many Requests"}``;
- the integration credentials role must exist and trust ``apigateway.amazonaws.com`` without an
  ``aws:SourceArn``/``aws:SourceAccount`` condition (API Gateway sends neither when it assumes it), else 500
  ``{"message": "Internal server error"}``; its policies must allow ``sagemaker:InvokeEndpoint`` on the
  endpoint (evaluated with moto's policy evaluator), else the runtime's 403 AccessDenied goes to the mapping;
- request templates are rendered with a Velocity engine (airspeed) or the body passes through
  (WHEN_NO_MATCH), request parameters map method headers to integration headers, and the call goes to the
  SageMaker runtime stand-in's ``/endpoints/<name>/invocations``;
- the integration response is chosen by matching the selection patterns against the runtime's HTTP status
  (whole string), its template rendered with airspeed (``$context.responseOverride.status`` honoured) and
  its response parameters applied (``integration.response.header.X`` or a quoted literal).

More lenient than AWS: no SigV4 between the gateway and the runtime stand-in; the integration timeout is
the runtime stand-in's, not ``timeoutInMillis``; usage-plan quotas are not counted; only ``$input.path``,
``$input.json``, ``$input.body`` and ``$context.responseOverride`` are offered to templates.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import airspeed

URI_RE = re.compile(r"^arn:[^:]+:apigateway:[^:]+:runtime\.sagemaker:path/endpoints/([^/]+)/invocations$")
EXCERPT_CHARS = 120


class VtlInput:
    """``$input`` of API Gateway's mapping templates over a JSON body (a dotted-path subset of JSONPath)."""

    def __init__(self, body: bytes):
        self._body = body
        try:
            self._json = json.loads(body or b"null")
        except ValueError:
            self._json = None

    def path(self, expression: str):
        value = self._json
        for part in expression.removeprefix("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return value

    def json(self, expression: str) -> str:
        return json.dumps(self.path(expression))

    @property
    def body(self) -> str:
        return self._body.decode("utf-8", "replace")


def render(template: str, body: bytes) -> tuple[str, dict]:
    """A mapping template rendered as API Gateway renders it; returns (text, $context.responseOverride)."""
    context: dict[str, dict] = {"responseOverride": {"status": None, "header": {}}}
    text = airspeed.Template(template).merge({"input": VtlInput(body), "context": context})
    return text.strip(), context["responseOverride"]


def select_response(responses: dict[str, dict], status: int) -> dict:
    """The integration response whose selection pattern matches the status, else the default one."""
    for response in responses.values():
        pattern = response.get("selectionPattern")
        if pattern and re.fullmatch(pattern, str(status)):
            return response
    return next(r for r in responses.values() if not r.get("selectionPattern"))


class _Bucket:
    def __init__(self, rate: float, burst: int):
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class GatewayStandin:
    def __init__(
        self,
        session,
        runtime_url: str,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] | None = None,
    ):
        """``session``: boto3 session allowed to read API Gateway and IAM in moto (the service's own view)."""
        self.gw, self.iam, self.host = session.client("apigateway"), session.client("iam"), host
        self.runtime_url, self.log = runtime_url.rstrip("/"), log
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                standin._serve(self, "POST")

            def do_GET(self):
                standin._serve(self, "GET")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_port}"

    def invoke_url(self, api_id: str, stage: str, path: str) -> str:
        return f"{self.url}/{api_id}/{stage}/{path.lstrip('/')}"

    def start(self) -> GatewayStandin:
        threading.Thread(target=self.server.serve_forever, name="gateway-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------------ serving

    def _serve(self, h: BaseHTTPRequestHandler, verb: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        try:
            status, payload, headers = self._answer(verb, urllib.parse.urlsplit(h.path).path, h.headers, body)
        except Exception as e:  # noqa: BLE001 - the stand-in answers as API Gateway does on its own faults
            status, payload, headers = (
                500,
                json.dumps({"message": f"Internal server error ({e})"}).encode(),
                {},
            )
        headers.setdefault("Content-Type", "application/json")
        if self.log:
            excerpt = payload[:EXCERPT_CHARS].decode("utf-8", "replace").replace("\n", " ")
            self.log(f"gateway {verb} {self.url}{h.path} -> {status} {excerpt}")
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _answer(self, verb: str, path: str, headers, body: bytes) -> tuple[int, bytes, dict]:
        parts = path.strip("/").split("/", 2)
        if len(parts) < 2:
            return _message(403, "Missing Authentication Token")
        api_id, stage = parts[0], parts[1]
        resource_path = "/" + (parts[2] if len(parts) > 2 else "")
        try:
            self.gw.get_stage(restApiId=api_id, stageName=stage)
            resources = self.gw.get_resources(restApiId=api_id, limit=500)["items"]
        except self.gw.exceptions.NotFoundException:
            return _message(403, "Missing Authentication Token")
        resource = next((r for r in resources if r["path"] == resource_path), None)
        method = (resource or {}).get("resourceMethods", {}).get(verb) if resource else None
        if resource is None or method is None:
            return _message(403, "Missing Authentication Token")
        method = self.gw.get_method(restApiId=api_id, resourceId=resource["id"], httpMethod=verb)
        if method.get("apiKeyRequired"):
            plan = self._usage_plan_for(headers.get("x-api-key"), api_id, stage)
            if plan is None:
                return _message(403, "Forbidden")
            throttle = plan.get("throttle") or {}
            if throttle:
                key = (plan["id"], headers.get("x-api-key"))
                bucket = self._buckets.setdefault(
                    key,
                    _Bucket(float(throttle.get("rateLimit", 1e9)), int(throttle.get("burstLimit", 1 << 30))),
                )
                if not bucket.take():
                    return _message(429, "Too Many Requests")
        integration = method["methodIntegration"]
        return self._integrate(integration, method, headers, body)

    def _usage_plan_for(self, key_value: str | None, api_id: str, stage: str) -> dict | None:
        if not key_value:
            return None
        keys = self.gw.get_api_keys(includeValues=True, limit=500)["items"]
        key = next((k for k in keys if k.get("value") == key_value and k.get("enabled")), None)
        if key is None:
            return None
        for plan in self.gw.get_usage_plans(limit=500)["items"]:
            if not any(
                s.get("apiId") == api_id and s.get("stage") == stage for s in plan.get("apiStages", [])
            ):
                continue
            plan_keys = self.gw.get_usage_plan_keys(usagePlanId=plan["id"], limit=500)["items"]
            if any(k["id"] == key["id"] for k in plan_keys):
                return plan
        return None

    def _integrate(self, integration: dict, method: dict, headers, body: bytes) -> tuple[int, bytes, dict]:
        match = URI_RE.match(integration.get("uri", ""))
        if integration.get("type") != "AWS" or match is None:
            return _message(500, "Internal server error (the stand-in serves SageMaker integrations only)")
        endpoint = match.group(1)
        if not self._can_assume(integration.get("credentials")):
            return _message(500, "Internal server error")
        out_headers = {}
        for target, source in (integration.get("requestParameters") or {}).items():
            name = target.removeprefix("integration.request.header.")
            if source.startswith("method.request.header."):
                value = headers.get(source.removeprefix("method.request.header."))
                if value:
                    out_headers[name] = value
            elif source.startswith("'"):
                out_headers[name] = source.strip("'")
        templates = integration.get("requestTemplates") or {}
        template = templates.get(headers.get("Content-Type", "application/json"))
        if template is not None:
            body = render(template, body)[0].encode()
        elif templates and integration.get("passthroughBehavior") == "NEVER":
            return _message(415, "Unsupported Media Type")
        status, answer, answer_headers = self._call_runtime(
            integration["credentials"], endpoint, body, out_headers
        )
        chosen = select_response(integration["integrationResponses"], status)
        final_status, payload = int(chosen["statusCode"]), answer
        response_template = (chosen.get("responseTemplates") or {}).get("application/json")
        if response_template is not None:
            text, override = render(response_template, answer)
            payload = text.encode()
            final_status = int(override["status"] or final_status)
        reply_headers = {}
        for target, source in (chosen.get("responseParameters") or {}).items():
            name = target.removeprefix("method.response.header.")
            if source.startswith("'"):
                reply_headers[name] = source.strip("'")
            elif source.startswith("integration.response.header."):
                value = answer_headers.get(source.removeprefix("integration.response.header."))
                if value:
                    reply_headers[name] = value
        return final_status, payload, reply_headers

    def _can_assume(self, role_arn: str | None) -> bool:
        """API Gateway assumes the credentials role as apigateway.amazonaws.com, with no source keys."""
        if not role_arn:
            return False
        try:
            role = self.iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except self.iam.exceptions.NoSuchEntityException:
            return False
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(urllib.parse.unquote(trust)) if isinstance(trust, str) else trust
        for statement in trust.get("Statement", []):
            services = statement.get("Principal", {}).get("Service", [])
            services = [services] if isinstance(services, str) else services
            if statement.get("Effect") == "Allow" and "apigateway.amazonaws.com" in services:
                conditions = json.dumps(statement.get("Condition", {}))
                if "aws:SourceArn" not in conditions and "aws:SourceAccount" not in conditions:
                    return True
        return False

    def _invoke_allowed(self, role_arn: str, endpoint_arn: str) -> bool:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        name = role_arn.rsplit("/", 1)[-1]
        allowed = False
        for policy_name in self.iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = self.iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            document = document if isinstance(document, str) else json.dumps(document)
            result = IAMPolicy(document).is_action_permitted("sagemaker:InvokeEndpoint", endpoint_arn)
            if result == PermissionResult.DENIED:
                return False
            allowed |= result == PermissionResult.PERMITTED
        return allowed

    def _call_runtime(
        self, role_arn: str, endpoint: str, body: bytes, headers: dict
    ) -> tuple[int, bytes, dict]:
        account, region = role_arn.split(":")[4], self.gw.meta.region_name
        if not self._invoke_allowed(
            role_arn, f"arn:aws:sagemaker:{region}:{account}:endpoint/{endpoint.lower()}"
        ):
            denied = {"message": f"{role_arn} is not authorized to perform: sagemaker:InvokeEndpoint"}
            return 403, json.dumps(denied).encode(), {"Content-Type": "application/json"}
        request = urllib.request.Request(
            f"{self.runtime_url}/endpoints/{urllib.parse.quote(endpoint)}/invocations",
            data=body,
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)


def _message(status: int, message: str) -> tuple[int, bytes, dict]:
    return status, json.dumps({"message": message}).encode(), {"Content-Type": "application/json"}
