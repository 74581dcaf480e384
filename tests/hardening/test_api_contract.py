"""openapi.yaml against one live `container/serve`: real responses validated, schemathesis, hypothesis
payloads.

One gunicorn serves the session artifact for the whole module. Every response any test here gets is
checked the same way (``check_response``): never a 5xx; every 4xx is JSON matching the spec's ``Error``;
every documented status and media type validated against the spec's schema. Counts go to the figures
(``record_figures``): cases run, statuses, 5xx, 4xx without a JSON error body. The hypothesis runs are
derandomized (the same cases on every run, so CI is reproducible) and their sizes add up to > 10,000.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import string
from collections import Counter

import pytest
import requests
import schemathesis
import yaml
from conftest import ROOT, make_opt_ml, run_train, venv_env
from hardening_support import GOOD, GOOD2, SPEC_PATH, record_figures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from processes import ServerProcess, start_serve
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
_REGISTRY = Registry().with_resource(
    "urn:spec", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
JSON_TYPES = ("application/json",)
MODEL_PATHS = ("/ping", "/invocations", "/predict_delay_probability", "/model_status")  # 503 without a model
SCORING_PATHS = ("/invocations", "/predict_delay_probability")
EARLIER = {"OPERA": "Sky Airline", "SIGLADES": "Calama", "FECHA_PROGRAMADA": "2017-11-27 13:00:00"}
SCHEMA_FIELDS = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I", "SIGLADES", "MES", "Vlo-I", "FECHA_PROGRAMADA")
PROPERTY_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
}


@functools.cache
def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:spec#{pointer}"}, registry=_REGISTRY)


ERROR_VALIDATOR = _validator("/components/schemas/Error")


def _resolve(node: dict) -> tuple[dict, str | None]:
    if "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        target = SPEC
        for part in pointer.strip("/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return target, pointer
    return node, None


def documented_response(path: str, method: str, status: int) -> tuple[dict, str]:
    """The spec's response object for (path, method, status) and its JSON pointer; 404/405 from components."""
    if path not in SPEC["paths"]:
        return SPEC["components"]["responses"]["NotFound"], "/components/responses/NotFound"
    operation = SPEC["paths"][path].get(method.lower())
    if operation is None:
        return SPEC["components"]["responses"]["MethodNotAllowed"], "/components/responses/MethodNotAllowed"
    pointer = f"/paths/{path.replace('/', '~1')}/{method.lower()}/responses/{status}"
    node = operation["responses"].get(str(status))
    assert node is not None, f"{method} {path}: status {status} is not in openapi.yaml"
    resolved, ref = _resolve(node)
    return resolved, ref or pointer


class Tally:
    """What the responses of one test looked like."""

    def __init__(self):
        self.cases, self.statuses, self.server_errors, self.bad_error_bodies = 0, Counter(), 0, 0
        self.transport_errors = 0

    def figures(self) -> dict:
        return {
            "cases": self.cases,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "5xx": self.server_errors,
            "4xx_without_json_error": self.bad_error_bodies,
            "transport_errors": self.transport_errors,
        }


def check_response(response, path: str, method: str, tally: Tally | None = None) -> None:
    """The response is documented in openapi.yaml and matches it; no 5xx; a 4xx carries the JSON error."""
    status, media = response.status_code, (header(response, "Content-Type") or "").split(";")[0].strip()
    if tally is not None:
        tally.cases += 1
        tally.statuses[status] += 1
        tally.server_errors += status >= 500
        if 400 <= status < 500 and (media != "application/json" or not _is_error_document(response.content)):
            tally.bad_error_bodies += 1
    context = f"{method} {path} -> {status} {media}: {response.content[:600]!r}"
    assert status < 500 or status == 503 and path in MODEL_PATHS and _unavailable(response), context
    documented, pointer = documented_response(path, method, status)
    content = documented.get("content", {})
    assert media in content, f"{context}\n{media!r} is not documented for this response ({sorted(content)})"
    for name, declared in documented.get("headers", {}).items():
        declared, _ = _resolve(declared)
        if declared.get("required"):
            assert header(response, name) is not None, f"{context}\nmissing required header {name}"
    if media in JSON_TYPES:
        doc = json.loads(response.content)
        errors = sorted(
            _validator(f"{pointer}/content/{media.replace('/', '~1')}/schema").iter_errors(doc), key=str
        )
        assert not errors, f"{context}\n" + "\n".join(e.message for e in errors[:5])
    if 400 <= status < 500:
        assert media == "application/json" and _is_error_document(response.content), context


def header(response, name: str) -> str | None:
    """A header of a ``requests`` response or of a schemathesis one (whose values are lists)."""
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


def _is_error_document(body: bytes) -> bool:
    try:
        return ERROR_VALIDATOR.is_valid(json.loads(body))
    except ValueError:
        return False


def _unavailable(response: requests.Response) -> bool:
    return (
        _is_error_document(response.content)
        and json.loads(response.content)["error"]["code"] == "model_unavailable"
    )


# ---------------------------------------------------------------- the live server


@pytest.fixture(scope="module")
def server(trained_opt_ml, model_dir, tmp_path_factory):
    process = start_serve(
        trained_opt_ml, model_dir, tmp_path_factory.mktemp("api-log"), SAGEMAKER_MAX_PAYLOAD_IN_MB="1"
    )
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"serve exited with {code}:\n{process.log_tail()}"


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def csv_of(*records: dict, header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I")
    if header:
        writer.writerow(fields)
    writer.writerows([[r.get(f, "") for f in fields] for r in records])
    return out.getvalue()


# ---------------------------------------------------------------- 1. the spec, and real responses against it


def test_openapi_yaml_is_a_valid_openapi_document():
    validate_spec(SPEC)
    assert set(SPEC["paths"]) == {
        "/ping",
        "/invocations",
        "/execution-parameters",
        "/predict_delay_probability",
        "/model_status",
    }


def test_spec_lists_every_request_and_response_format_the_codec_knows():
    from scl_delay.codec import REQUEST_TYPES, RESPONSE_TYPES

    invocations = SPEC["paths"]["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == set(REQUEST_TYPES)
    assert set(invocations["responses"]["200"]["content"]) == set(RESPONSE_TYPES)
    params = {p["$ref"].rsplit("/", 1)[1] for p in invocations["parameters"]}
    assert params == {"output", "explain", "top", "unknown", "on_error", "customAttributes"}


GOOD_JSON = json.dumps([GOOD, GOOD2])
REAL_REQUESTS = [
    # (method, path, body, headers, params, expected status)
    ("GET", "/ping", None, {}, {}, 200),
    ("GET", "/execution-parameters", None, {}, {}, 200),
    (
        "POST",
        "/invocations",
        json.dumps({"instances": [GOOD, GOOD2]}),
        {"Content-Type": "application/json"},
        {},
        200,
    ),
    ("POST", "/invocations", json.dumps({"flights": [GOOD]}), {"Content-Type": "application/json"}, {}, 200),
    ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json; charset=utf-8"}, {}, 200),
    ("POST", "/invocations", json.dumps(GOOD), {"Content-Type": "application/json"}, {}, 200),
    ("POST", "/invocations", json.dumps(GOOD), {}, {}, 200),
    ("POST", "/invocations", csv_of(GOOD, GOOD2), {"Content-Type": "text/csv"}, {}, 200),
    ("POST", "/invocations", csv_of(GOOD, GOOD2, header=False), {"Content-Type": "text/csv"}, {}, 200),
    *[
        ("POST", "/invocations", json.dumps(GOOD) + "\n" + json.dumps(GOOD2), {"Content-Type": t}, {}, 200)
        for t in (
            "application/jsonlines",
            "application/jsonl",
            "application/x-jsonlines",
            "application/x-ndjson",
        )
    ],
    *[
        ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json", "Accept": a}, {}, 200)
        for a in (
            "application/json",
            "*/*",
            "text/csv",
            "application/jsonlines",
            "application/x-ndjson",
            "text/html, text/csv;q=0.5",
        )
    ],
    ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json"}, {"output": "probability"}, 200),
    ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json"}, {"output": "decision"}, 200),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {"Content-Type": "application/json", "Accept": "text/csv"},
        {"output": "decision"},
        200,
    ),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {"Content-Type": "application/json"},
        {"explain": "true", "top": "2"},
        200,
    ),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {"Content-Type": "application/json", "Accept": "application/jsonlines"},
        {"explain": "1"},
        200,
    ),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "output=probability;explain=yes",
        },
        {},
        200,
    ),
    (
        "POST",
        "/invocations",
        json.dumps({**GOOD, "OPERA": "XX"}),
        {"Content-Type": "application/json"},
        {},
        200,
    ),
    (
        "POST",
        "/invocations",
        json.dumps({**GOOD, "OPERA": "XX"}),
        {"Content-Type": "application/json"},
        {"unknown": "reject"},
        400,
    ),
    ("POST", "/invocations", csv_of(GOOD, {**GOOD, "TIPOVUELO": "Z"}), {"Content-Type": "text/csv"}, {}, 200),
    (
        "POST",
        "/invocations",
        json.dumps([GOOD, {**GOOD, "TIPOVUELO": "Z"}, {**GOOD, "OPERA": 3}]),
        {"Content-Type": "application/json"},
        {},
        200,
    ),
    (
        "POST",
        "/invocations",
        csv_of(GOOD, {**GOOD, "TIPOVUELO": "Z"}),
        {"Content-Type": "text/csv"},
        {"on_error": "fail"},
        400,
    ),
    (
        "POST",
        "/invocations",
        json.dumps([GOOD, {**GOOD, "TIPOVUELO": "Z"}, {**GOOD, "OPERA": 3}]),
        {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "on_error=fail"},
        {},
        400,
    ),
    ("POST", "/invocations", json.dumps(EARLIER), {"Content-Type": "application/json"}, {}, 200),
    (
        "POST",
        "/predict_delay_probability",
        json.dumps(EARLIER),
        {"Content-Type": "application/json"},
        {},
        200,
    ),
    (
        "POST",
        "/predict_delay_probability",
        json.dumps([EARLIER, {**EARLIER, "TIPOVUELO": "I"}]),
        {"Content-Type": "application/json"},
        {},
        200,
    ),
    (
        "POST",
        "/predict_delay_probability",
        json.dumps({**EARLIER, "TIPOVUELO": "I"}),
        {"Content-Type": "application/json"},
        {},
        400,
    ),
    ("POST", "/predict_delay_probability", "<a/>", {"Content-Type": "application/xml"}, {}, 415),
    ("GET", "/model_status", None, {}, {}, 200),
    ("POST", "/model_status", None, {}, {}, 405),
    ("POST", "/invocations", '{"instances": [', {"Content-Type": "application/json"}, {}, 400),
    ("POST", "/invocations", "{x}\n", {"Content-Type": "application/jsonlines"}, {}, 400),
    ("POST", "/invocations", "", {"Content-Type": "application/json"}, {}, 400),
    ("POST", "/invocations", b"\xff\xfe", {"Content-Type": "text/csv"}, {}, 400),
    ("POST", "/invocations", "[" * 100_000, {"Content-Type": "application/json"}, {}, 400),
    ("POST", "/invocations", '{"a":' * 50_000, {"Content-Type": "application/jsonlines"}, {}, 400),
    ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json"}, {"output": "all-of-it"}, 400),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {"Content-Type": "application/json"},
        {"top": "99", "explain": "1"},
        400,
    ),
    ("POST", "/invocations", GOOD_JSON, {"Content-Type": "application/json", "Accept": "image/png"}, {}, 406),
    (
        "POST",
        "/invocations",
        GOOD_JSON,
        {"Content-Type": "application/json", "Accept": "text/csv"},
        {"explain": "true"},
        406,
    ),
    ("POST", "/invocations", "x" * (1024 * 1024 + 1), {"Content-Type": "text/csv"}, {}, 413),
    ("POST", "/invocations", "<a/>", {"Content-Type": "application/xml"}, {}, 415),
    ("GET", "/invocations", None, {}, {}, 405),
    ("POST", "/ping", None, {}, {}, 405),
    ("PUT", "/execution-parameters", None, {}, {}, 405),
    ("GET", "/nowhere", None, {}, {}, 404),
]


@pytest.mark.parametrize(
    "method, path, body, headers, params, status",
    REAL_REQUESTS,
    ids=[f"{i}-{r[0]}{r[1]}-{r[5]}" for i, r in enumerate(REAL_REQUESTS)],
)
def test_real_responses_match_openapi_yaml(server, session, method, path, body, headers, params, status):
    data = body.encode() if isinstance(body, str) else body
    # After a 413 gunicorn drains at most 64 KB of the unread body, then closes the connection without a
    # `Connection: close` (the answer has gone out): a pooled connection would break the next request.
    client = requests if status == 413 else session
    try:
        response = client.request(
            method, f"{server.url}{path}", data=data, headers=headers, params=params, timeout=30
        )
    except requests.ConnectionError:  # 413: the server may answer and close before the whole body is sent
        assert status == 413
        return
    assert response.status_code == status, response.text[:1000]
    check_response(response, path, method)


def test_ping_and_invocations_without_a_model_match_openapi_yaml(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    process = ServerProcess(
        [str(ROOT / "container" / "serve")],
        venv_env(OPT_ML_DIR=str(tmp_path), SM_MODEL_DIR=str(empty)),
        log_dir=tmp_path,
    )
    try:
        ping = process.wait_ping(deadline_s=30, expect=503)
        check_response(ping, "/ping", "GET")
        for path in SCORING_PATHS:
            response = requests.post(f"{process.url}{path}", json=GOOD, timeout=10)
            assert response.status_code == 503, response.text
            check_response(response, path, "POST")
    finally:
        process.stop()


# ------------------------------------------------------------ 2a. schemathesis: cases generated from the spec

schemathesis.serializer("text/csv")(
    lambda ctx, value: value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode()
)
schemathesis.serializer(
    "application/jsonlines", "application/jsonl", "application/x-jsonlines", "application/x-ndjson"
)(lambda ctx, value: value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode())

SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
SCHEMATHESIS_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
SCHEMATHESIS_EXAMPLES = {
    ("/invocations", "POST"): 500,
    ("/predict_delay_probability", "POST"): 200,
    ("/model_status", "GET"): 30,
    ("/ping", "GET"): 50,
    ("/execution-parameters", "GET"): 50,
}


@pytest.mark.parametrize("path, method", list(SCHEMATHESIS_EXAMPLES))
def test_schemathesis_cases_from_the_spec_get_documented_answers(
    server, session, request, tmp_path, path, method
):
    operation = SCHEMA[path][method]
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    tally = Tally()

    @settings(max_examples=SCHEMATHESIS_EXAMPLES[(path, method)], **PROPERTY_SETTINGS)
    @given(case=strategy)
    def run(case):
        try:
            response = case.call(base_url=server.url, session=session, timeout=30)
        except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
            tally.transport_errors += 1  # requests refused to send it (not a valid HTTP message)
            return
        try:
            case.validate_response(response, checks=SCHEMATHESIS_CHECKS)
            check_response(response, path, method, tally)
        except BaseException:
            print(f"\nfailing case: {case.as_curl_command()}\nresponse headers: {dict(response.headers)}")
            raise

    run()
    record_figures(request, tmp_path, f"schemathesis {method} {path}", tally.figures())
    assert tally.server_errors == 0 and tally.bad_error_bodies == 0, tally.figures()


# ---------------------------------------------------------------- 2b. hypothesis payloads over HTTP

BIG_INTS = st.integers(min_value=-(10**400), max_value=10**400)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    BIG_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=string.printable, max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "I",
            "N",
            "i",
            "Grupo LATAM",
            "2017-01-01 23:30:00",
            "2017-13-01 10:00",
            "2017-02-30 10:00",
            "9999-12-31 23:59:59",
            "0001-01-01",
            "\x00",
            "\ud7ff",
            "NaN",
            "1e400",
            "-0",
            "١٢",
            "２０１７-０１-０１ １０:００",
        ]
    ),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=8,
)
FLAT_RECORDS = st.one_of(
    st.fixed_dictionaries({}, optional={f: SCALARS for f in SCHEMA_FIELDS}),
    st.builds(
        lambda base, changes: {**base, **changes},
        st.sampled_from([GOOD, GOOD2]),
        st.dictionaries(st.sampled_from(SCHEMA_FIELDS), SCALARS, max_size=2),
    ),
)
RECORDS = st.one_of(
    st.fixed_dictionaries({}, optional={f: JSON_VALUES for f in SCHEMA_FIELDS}),
    st.builds(
        lambda base, changes: {**base, **changes},
        st.sampled_from([GOOD, GOOD2]),
        st.dictionaries(st.sampled_from(SCHEMA_FIELDS), SCALARS, max_size=2),
    ),
)
JSON_DOCUMENTS = st.one_of(
    JSON_VALUES,
    RECORDS,
    st.lists(RECORDS, max_size=4),
    st.builds(
        lambda key, value: {key: value},
        st.sampled_from(["instances", "flights"]),
        st.one_of(st.lists(RECORDS, max_size=4), JSON_VALUES),
    ),
)
JSON_MEDIA = ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", None]
ACCEPTS = [
    None,
    "application/json",
    "text/csv",
    "application/jsonlines",
    "*/*",
    "text/*",
    "application/x-ndjson",
    "text/html",
    "image/*;q=0, text/csv",
    "application/json;q=0",
    "",
    ",,,",
    "text/csv;q=abc",
]
QUERIES = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "output": st.sampled_from(["probability", "decision", "both", "nope", "", "PROBABILITY, label"]),
            "explain": st.sampled_from(["true", "0", "maybe", "", "YES"]),
            "top": st.sampled_from(
                ["1", "20", "0", "21", "-1", "x", "٣", "\u00b2", "+-2", "99999999999999999999"]
            ),
            "unknown": st.sampled_from(["score", "reject", "REJECT", "maybe", ""]),
            "on_error": st.sampled_from(["record", "fail", "Fail", "explode", ""]),
        },
    ),
)
CUSTOM = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "output=decision",
            "explain=true;top=2",
            "output=;explain=",
            ";;==;",
            "top=-3",
            "explain=perhaps",
            "nothing",
            "unknown=reject;on_error=fail",
            "on_error=sometimes",
        ]
    ),
)


def _dumps(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _post(
    session,
    server,
    tally: Tally,
    body: bytes,
    content_type: str | None,
    accept: str | None = None,
    params: dict | None = None,
    custom: str | None = None,
    path: str = "/invocations",
) -> requests.Response:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    if custom is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
    response = session.post(f"{server.url}{path}", data=body, headers=headers, params=params, timeout=30)
    check_response(response, path, "POST", tally)
    return response


def _property_test(name: str, examples: int):
    """Runs the decorated ``(session, server, tally, **drawn)`` body as a derandomized hypothesis test."""

    def wrap(body, strategies: dict):
        def test(server, session, request, tmp_path):
            tally = Tally()

            @settings(max_examples=examples, **PROPERTY_SETTINGS)
            @given(**strategies)
            def run(**drawn):
                body(session, server, tally, **drawn)

            run()
            record_figures(request, tmp_path, name, tally.figures())
            assert tally.server_errors == 0 and tally.bad_error_bodies == 0, tally.figures()

        test.__name__ = f"test_{name.replace(' ', '_')}"
        return test

    return wrap


def _json_shapes(session, server, tally, doc, media, accept, params, custom, path):
    response = _post(session, server, tally, _dumps(doc), media, accept, params, custom, path)
    if response.status_code == 200 and path == "/invocations" and (accept in (None, "application/json")):
        assert response.json()["predictions"]


test_random_json_shapes_never_get_a_5xx = _property_test("random JSON shapes", 3500)(
    _json_shapes,
    {
        "doc": JSON_DOCUMENTS,
        "media": st.sampled_from(JSON_MEDIA),
        "accept": st.sampled_from(ACCEPTS),
        "params": QUERIES,
        "custom": CUSTOM,
        "path": st.sampled_from(SCORING_PATHS),
    },
)


def _to_format(records: list, kind: str, header: bool) -> bytes:
    if kind == "text/csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        fields = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I")
        if header:
            writer.writerow(fields)
        for r in records:
            writer.writerow(["" if r.get(f) is None else r.get(f) for f in fields])
        return out.getvalue().encode("utf-8", "surrogatepass")
    return b"".join(_dumps(r) + b"\n" for r in records)


def _records_in_every_format(session, server, tally, records, kind, header, accept, path):
    """Besides no 5xx: a 200 in CSV or JSON Lines has one line per record (+ the CSV header line's own)."""
    response = _post(session, server, tally, _to_format(records, kind, header), kind, accept, path=path)
    answer = response.headers.get("Content-Type", "").split(";")[0]
    if (
        response.status_code == 200
        and path == "/invocations"
        and answer in ("text/csv", "application/jsonlines")
    ):
        lines = response.text.removesuffix("\n").split("\n")
        assert len(lines) == len(records) + (kind == answer == "text/csv" and header), lines


test_random_records_in_csv_and_json_lines_never_get_a_5xx = _property_test("random records CSV JSONL", 3000)(
    _records_in_every_format,
    {
        "records": st.lists(FLAT_RECORDS, min_size=1, max_size=6),
        "kind": st.sampled_from(["text/csv", "application/jsonlines"]),
        "header": st.booleans(),
        "accept": st.sampled_from(ACCEPTS),
        "path": st.sampled_from(SCORING_PATHS),
    },
)

VALID_BODIES = [
    (_dumps([GOOD, GOOD2]), "application/json"),
    (_dumps({"instances": [GOOD]}), "application/json"),
    (csv_of(GOOD, GOOD2).encode(), "text/csv"),
    (csv_of(GOOD, header=False).encode(), "text/csv"),
    (_dumps(GOOD) + b"\n" + _dumps(GOOD2), "application/jsonlines"),
]
ANY_MEDIA = [
    "application/json",
    "text/csv",
    "application/jsonlines",
    "application/x-ndjson",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/xml",
    "",
    ";",
    "text/csv; charset=latin-1",
    "application/json; charset=utf-16",
    "*/*",
    "application/vnd.api+json",
    "\u00e9/\u00e9".encode().decode("latin-1"),
    None,
]


def _bytes_and_mismatches(session, server, tally, source, cut, garbage, mode, media, accept):
    body, _ = source
    if mode == "truncated":
        data = body[: cut % (len(body) + 1)]
    elif mode == "garbage":
        data = garbage
    elif mode == "spliced":
        position = cut % (len(body) + 1)
        data = body[:position] + garbage + body[position:]
    else:  # a valid body under another media type
        data = body
    _post(session, server, tally, data, media, accept)


test_binary_garbage_truncation_and_mismatched_types_never_get_a_5xx = _property_test(
    "bytes truncation mismatched types", 3000
)(
    _bytes_and_mismatches,
    {
        "source": st.sampled_from(VALID_BODIES),
        "cut": st.integers(min_value=0, max_value=10**6),
        "garbage": st.binary(max_size=200),
        "mode": st.sampled_from(["truncated", "garbage", "spliced", "mismatched"]),
        "media": st.sampled_from(ANY_MEDIA),
        "accept": st.sampled_from(ACCEPTS),
    },
)


def _nesting_and_sizes(session, server, tally, depth, opener, kind, width):
    if opener == "wide":
        data = (
            _dumps([GOOD] * width) if kind == "application/json" else _to_format([GOOD] * width, kind, True)
        )
    else:
        closer = {"[": "]", '{"a":': "}", '{"instances":[': "]}"}[opener]
        data = (opener * depth + "1" + closer * depth).encode()
    _post(session, server, tally, data, kind, None)


test_deep_nesting_and_many_records_never_get_a_5xx = _property_test("deep nesting and sizes", 150)(
    _nesting_and_sizes,
    {
        "depth": st.integers(min_value=1, max_value=60_000),  # < 1 MB, the limit here
        "opener": st.sampled_from(["[", '{"a":', '{"instances":[', "wide"]),
        "kind": st.sampled_from(["application/json", "application/jsonlines", "text/csv"]),
        "width": st.integers(min_value=1, max_value=5000),
    },
)


# ---------------------------------------------------------------- 2c. the challenge model: MES, not Des-I

MONTHS = st.one_of(
    SCALARS,
    st.integers(min_value=-20, max_value=20),
    st.sampled_from(
        [
            "7",
            " 12 ",
            "+7",
            "-1",
            "+-5",
            "--3",
            "\u00b2",
            "\u0663",
            "\uff17",
            "1_0",
            "0x7",
            "7.0",
            "7.5",
            "1e1",
        ]
    ),
)
CHALLENGE_GOOD = {"OPERA": "Grupo LATAM", "TIPOVUELO": "I", "MES": 7}
CHALLENGE_RECORDS = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"OPERA": SCALARS, "TIPOVUELO": SCALARS, "MES": MONTHS, "Fecha-I": SCALARS}
    ),
    st.builds(
        lambda changes: {**CHALLENGE_GOOD, **changes},
        st.fixed_dictionaries({}, optional={"MES": MONTHS, "Fecha-I": SCALARS}),
    ),
)


@pytest.fixture(scope="module")
def challenge_server(synthetic_csv, tmp_path_factory):
    """A second live server, for a `feature_set=challenge` model: it reads MES (or Fecha-I) instead of
    Des-I."""
    root = make_opt_ml(
        tmp_path_factory.mktemp("challenge-opt-ml"),
        synthetic_csv,
        {"feature_set": "challenge", "num_round": "50", "early_stopping_rounds": "10"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stderr[-3000:]
    process = start_serve(root, root / "model", tmp_path_factory.mktemp("challenge-log"))
    try:
        yield process
    finally:
        assert process.stop() == 0, process.log_tail()


def test_random_months_for_the_challenge_model_never_get_a_5xx(challenge_server, session, request, tmp_path):
    tally = Tally()

    @settings(max_examples=1000, **PROPERTY_SETTINGS)
    @given(records=st.lists(CHALLENGE_RECORDS, min_size=1, max_size=4), wrap=st.booleans())
    def run(records, wrap):
        response = _post(
            session,
            challenge_server,
            tally,
            _dumps({"instances": records} if wrap else records),
            "application/json",
        )
        if response.status_code == 400:
            error = response.json()["error"]
            assert error["record"] is None or 0 <= error["record"] < len(records), error

    run()
    record_figures(request, tmp_path, "challenge model months", tally.figures())
    assert tally.server_errors == 0 and tally.bad_error_bodies == 0, tally.figures()
    assert tally.statuses[200] > 0 and tally.statuses[400] > 0, tally.figures()
