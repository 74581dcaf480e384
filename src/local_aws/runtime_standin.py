"""A SageMaker runtime stand-in: InvokeEndpoint forwarded to a local ``serve``.

moto's runtime answers canned bytes. Point ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` here (while
``AWS_ENDPOINT_URL`` stays on moto) and ``POST /endpoints/<name>/invocations`` goes to
``<upstream>/invocations`` with Content-Type, Accept and custom attributes, as SageMaker forwards them.
A container 4xx/5xx comes back the way real callers see it: HTTP 424 ``ModelError`` with
``OriginalStatusCode`` and ``OriginalMessage`` (botocore raises ``ModelError``); a container that times out
or crashes (no HTTP answer) is 424 with ``OriginalStatusCode`` 0, as SageMaker reports it. An endpoint with
no route is ``ValidationError`` 400, as for an endpoint that does not exist.

    python -m local_aws.runtime_standin --upstream http://127.0.0.1:8080 --port 0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH_RE = re.compile(r"^/endpoints/([^/]+)/invocations$")
FORWARDED = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
ACCOUNT = "123456789012"
TIMEOUT_S = 60
MAX_BODY_BYTES = 6 * 1024 * 1024


class RuntimeStandin:
    """Routes endpoint name -> upstream base URL; ``default`` serves any endpoint not routed."""

    def __init__(
        self,
        default: str | None = None,
        routes: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        timeout_s: float = TIMEOUT_S,
    ):
        self.default, self.routes, self.region, self.host = default, dict(routes or {}), region, host
        self.timeout_s = timeout_s
        self.calls: list[dict] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                standin._handle(self)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_port}"

    def route(self, endpoint: str, upstream: str) -> None:
        self.routes[endpoint] = upstream

    def start(self) -> RuntimeStandin:
        self.thread = threading.Thread(target=self.server.serve_forever, name="runtime-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _error(self, h, status: int, code: str, fields: dict) -> None:
        self._reply(
            h,
            status,
            json.dumps(fields).encode(),
            {"Content-Type": "application/json", "x-amzn-ErrorType": code},
        )

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        m = PATH_RE.match(urllib.parse.urlsplit(h.path).path)
        if not m:
            return self._error(h, 404, "UnknownOperationException", {"message": f"no route for {h.path}"})
        endpoint = urllib.parse.unquote(m.group(1))
        self.calls.append({"endpoint": endpoint, "headers": dict(h.headers), "body": body})
        upstream = self.routes.get(endpoint, self.default)
        if upstream is None:
            return self._error(
                h, 400, "ValidationError", {"message": f"Endpoint {endpoint} of account {ACCOUNT} not found."}
            )
        if len(body) > MAX_BODY_BYTES:
            return self._error(h, 413, "ValidationError", {"message": "Request body exceeds 6 MB"})
        headers = {k: h.headers[k] for k in FORWARDED if h.headers.get(k)}
        request = urllib.request.Request(
            f"{upstream.rstrip('/')}/invocations", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                out = {
                    "Content-Type": response.headers.get("Content-Type", "application/octet-stream"),
                    "x-Amzn-Invoked-Production-Variant": "AllTraffic",
                }
                if response.headers.get("X-Amzn-SageMaker-Custom-Attributes"):
                    out["X-Amzn-SageMaker-Custom-Attributes"] = response.headers[
                        "X-Amzn-SageMaker-Custom-Attributes"
                    ]
                return self._reply(h, 200, response.read(), out)
        except urllib.error.HTTPError as e:
            original = e.read().decode("utf-8", "replace")
            kind = "client" if e.code < 500 else "server"
            log = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
            return self._error(
                h,
                424,
                "ModelError",
                {
                    "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
                    "OriginalStatusCode": e.code,
                    "OriginalMessage": original,
                    "LogStreamArn": log,
                    "Message": f'Received {kind} error ({e.code}) from primary with message "{original}". '
                    f"See {log} in account {ACCOUNT} for more information.",
                },
            )
        except (urllib.error.URLError, OSError) as e:
            # SageMaker reports a container that timed out or crashed (no HTTP answer) as 424 ModelError
            # with OriginalStatusCode 0
            log = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
            return self._error(
                h,
                424,
                "ModelError",
                {
                    "ErrorCode": "SERVER_ERROR_FROM_MODEL",
                    "OriginalStatusCode": 0,
                    "OriginalMessage": "",
                    "LogStreamArn": log,
                    "Message": "Received server error (0) from primary with message "
                    f'"Your invocation timed out while waiting for a response from container primary '
                    f'({e.__class__.__name__})". See {log} in account {ACCOUNT} for more information.',
                },
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SageMaker runtime stand-in forwarding to a local serve")
    p.add_argument("--upstream", help="base URL of the local serve for every endpoint")
    p.add_argument("--route", action="append", default=[], metavar="ENDPOINT=URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    routes = dict(r.split("=", 1) for r in args.route)
    standin = RuntimeStandin(args.upstream, routes, args.host, args.port)
    print(f"runtime stand-in at {standin.url}", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
