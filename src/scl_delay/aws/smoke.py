"""The smoke test after a deploy: one real prediction through the gateway URL, with the API key.

It was a shell heredoc in deploy.yml; here it is one function the deploy (and its tests) call. The key's
value is read with apigateway GetApiKey(includeValue) and sent as ``x-api-key``; it is never printed.
``$SCL_EXECUTE_API_ENDPOINT_URL`` (like ``AWS_ENDPOINT_URL``) sends the call to a local gateway stand-in:
``https://{api}.execute-api.{region}.{suffix}/{stage}/{path}`` -> ``{that URL}/{api}/{stage}/{path}``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EXECUTE_API_ENDPOINT_ENV = "SCL_EXECUTE_API_ENDPOINT_URL"
# a flight every model version can score: the schema's required fields, values seen in the SCL data
SAMPLE_RECORD = {
    "Fecha-I": "2017-01-15 23:30:00",
    "Vlo-I": "226",
    "Ori-I": "SCEL",
    "Des-I": "KMIA",
    "Emp-I": "LAN",
    "MES": 1,
    "TIPOVUELO": "I",
    "OPERA": "Grupo LATAM",
    "SIGLAORI": "Santiago",
    "SIGLADES": "Miami",
}
BODY_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    status: int
    url: str
    body: str
    attempts: int
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "status": self.status,
            "url": self.url,
            "attempts": self.attempts,
            "reason": self.reason,
            "body": self.body[:BODY_EXCERPT_CHARS],
        }


def local_url(invoke_url: str, env: Mapping[str, str]) -> str:
    base = env.get(EXECUTE_API_ENDPOINT_ENV)
    if not base:
        return invoke_url
    parts = urllib.parse.urlsplit(invoke_url)
    api_id = (parts.hostname or "").split(".", 1)[0]
    return f"{base.rstrip('/')}/{api_id}{parts.path}"


def has_probability(body: str) -> bool:
    """Some number in [0, 1] in a JSON answer: the delay probability, whatever the envelope."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += node.values()
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and 0 <= node <= 1:
            return True
    return False


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, f"{type(e).__name__}: {e}"


def smoke_test(
    gw,
    invoke_url: str,
    api_key_id: str,
    env: Mapping[str, str],
    *,
    attempts: int = 6,
    delay_s: float = 10.0,
    timeout_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    send: Callable[[str, bytes, Mapping[str, str], float], tuple[int, str]] = post,
) -> SmokeResult:
    """POST one flight; pass on 200 with a probability in the answer. A fresh stage can take a few
    seconds to answer, so a failure is retried ``attempts`` times, ``delay_s`` apart."""
    key = gw.get_api_key(apiKey=api_key_id, includeValue=True)["value"]
    url = local_url(invoke_url, env)
    body = json.dumps({"instances": [SAMPLE_RECORD]}).encode()
    headers = {"x-api-key": key, "Content-Type": "application/json", "Accept": "application/json"}
    status, text = 0, ""
    for attempt in range(1, attempts + 1):
        status, text = send(url, body, headers, timeout_s)
        if status == 200 and has_probability(text):
            return SmokeResult(True, status, invoke_url, text, attempt)
        if attempt < attempts:
            sleep(delay_s)
    reason = f"HTTP {status}" if status != 200 else "the answer holds no delay probability"
    return SmokeResult(False, status, invoke_url, text, attempts, reason)
