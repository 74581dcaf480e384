"""`serve` against one real gunicorn (container/serve) on a free loopback port, serving the session artifact.

Tables of (body, content type) -> (status, field named); every Accept; every error with status and
message; output selection; explanations; predictions equal to the in-process ones; a concurrency smoke.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from processes import start_serve

from scl_delay.artifact import load_model
from scl_delay.errors import InputError
from scl_delay.features import build_features
from scl_delay.schema import parse_columns
from scl_delay.server import _STATUS, status_for

GOOD = {
    "Fecha-I": "2017-01-01 23:30:00",
    "OPERA": "Grupo LATAM",
    "TIPOVUELO": "I",
    "Des-I": "KMIA",
    "Vlo-I": "226",
    "SIGLADES": "Miami",
}
GOOD2 = {"Fecha-I": "2017-07-20 08:05", "OPERA": "Sky Airline", "TIPOVUELO": "N", "Des-I": "SCFA"}
FIELDS = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I")
CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"


def csv_of(*records: dict, header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(FIELDS)
    writer.writerows([[r.get(f, "") for f in FIELDS] for r in records])
    return out.getvalue()


def expect_status(response: requests.Response, status: int) -> dict | str:
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text[:2000]}"
    if response.headers.get("Content-Type", "").split(";")[0] == "application/json":
        return response.json()
    return response.text


@pytest.fixture(scope="module")
def server(trained_opt_ml, model_dir, tmp_path_factory):
    """One gunicorn for the whole module, started exactly as SageMaker would (container/serve)."""
    log_dir = tmp_path_factory.mktemp("serve-log")
    process = start_serve(
        trained_opt_ml, model_dir, log_dir, SAGEMAKER_MAX_PAYLOAD_IN_MB="1", MODEL_SERVER_WORKERS="2"
    )
    process.startup_s = time.monotonic() - process.started
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"serve exited with {code} on SIGTERM:\n{process.log_tail()}"


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def invoke(session, server, body, content_type="application/json", params=None, **headers):
    data = body if isinstance(body, bytes) else body.encode()
    return session.post(
        f"{server.url}/invocations",
        data=data,
        params=params,
        headers={"Content-Type": content_type, **headers} if content_type else headers,
        timeout=30,
    )


# ---------------------------------------------------------------- the SageMaker endpoints


def test_ping_answers_200_with_the_model_version(server, session, loaded):
    doc = expect_status(session.get(f"{server.url}/ping"), 200)
    assert doc == {"status": "ok", "model_version": loaded.version}


def test_serve_answered_ping_within_three_seconds_of_start(server):
    # The floor is 3 s (SageMaker's: a few seconds); a CI machine busy with other jobs gets slack.
    assert server.startup_s < 6, f"first /ping 200 after {server.startup_s:.2f} s:\n{server.log_tail()}"


def test_execution_parameters_describe_batch_transform(server, session):
    doc = expect_status(session.get(f"{server.url}/execution-parameters"), 200)
    assert doc == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 1}


# ---------------------------------------------------------------- request formats


@pytest.mark.parametrize(
    "body, content_type, n",
    [
        (json.dumps({"instances": [GOOD, GOOD2]}), "application/json", 2),
        (json.dumps({"flights": [GOOD]}), "application/json", 1),
        (json.dumps([GOOD, GOOD2, GOOD]), "application/json; charset=utf-8", 3),
        (json.dumps(GOOD), "application/json", 1),
        (json.dumps(GOOD), None, 1),
        (csv_of(GOOD, GOOD2), "text/csv", 2),
        (csv_of(GOOD, GOOD2, header=False), "text/csv", 2),
        (csv_of(GOOD2, header=False), "text/csv; charset=utf-8", 1),
        (json.dumps(GOOD) + "\n" + json.dumps(GOOD2) + "\n", "application/jsonlines", 2),
        (json.dumps(GOOD2), "application/jsonlines", 1),
    ],
)
def test_invocations_accepts_every_request_format(server, session, loaded, body, content_type, n):
    doc = expect_status(invoke(session, server, body, content_type), 200)
    assert len(doc["predictions"]) == n
    assert doc["model_version"] == loaded.version and doc["threshold"] == loaded.threshold
    for p in doc["predictions"]:
        assert 0 <= p["probability"] <= 1 and p["decision"] == (p["probability"] >= loaded.threshold)


def test_all_formats_give_the_same_predictions(server, session):
    answers = [
        expect_status(invoke(session, server, body, ctype), 200)["predictions"]
        for body, ctype in [
            (json.dumps([GOOD, GOOD2]), "application/json"),
            (csv_of(GOOD, GOOD2), "text/csv"),
            (csv_of(GOOD, GOOD2, header=False), "text/csv"),
            ("\n".join(json.dumps(r) for r in (GOOD, GOOD2)), "application/jsonlines"),
        ]
    ]
    assert all(a == answers[0] for a in answers)


@pytest.mark.parametrize(
    "accept, media, parse",
    [
        (None, "application/json", lambda t: json.loads(t)["predictions"]),
        ("*/*", "application/json", lambda t: json.loads(t)["predictions"]),
        ("application/json", "application/json", lambda t: json.loads(t)["predictions"]),
        (
            "text/csv",
            "text/csv",
            lambda t: [
                {"probability": float(p), "decision": d == "1"}
                for p, d, unknown, error in csv.reader(io.StringIO(t))
            ],
        ),
        ("application/jsonlines", "application/jsonlines", lambda t: [json.loads(x) for x in t.splitlines()]),
        (
            "text/html, application/jsonlines;q=0.5",
            "application/jsonlines",
            lambda t: [json.loads(x) for x in t.splitlines()],
        ),
    ],
)
def test_invocations_answers_in_the_accepted_type(server, session, loaded, accept, media, parse):
    expected = expect_status(invoke(session, server, json.dumps([GOOD, GOOD2])), 200)["predictions"]
    headers = {"Accept": accept} if accept else {}
    response = invoke(session, server, json.dumps([GOOD, GOOD2]), **headers)
    expect_status(response, 200)
    assert response.headers["Content-Type"].startswith(media)
    assert response.headers["X-Model-Version"] == loaded.version
    assert parse(response.text) == expected


# ---------------------------------------------------------------- output selection and explanations


@pytest.mark.parametrize(
    "params, headers, keys",
    [
        ({"output": "probability"}, {}, ["probability"]),
        ({"output": "decision"}, {}, ["decision"]),
        ({"output": "both"}, {}, ["probability", "decision"]),
        ({"output": "predicted_label,probability"}, {}, ["probability", "decision"]),
        ({}, {"X-Amzn-SageMaker-Custom-Attributes": "output=decision"}, ["decision"]),
        (
            {"output": "probability"},
            {"X-Amzn-SageMaker-Custom-Attributes": "output=decision"},
            ["probability"],
        ),
        ({}, {}, ["probability", "decision"]),
    ],
)
def test_output_selection_per_request(server, session, params, headers, keys):
    doc = expect_status(invoke(session, server, json.dumps(GOOD), params=params, **headers), 200)
    assert list(doc["predictions"][0]) == keys


def test_output_selection_applies_to_csv(server, session):
    text = expect_status(
        invoke(session, server, json.dumps([GOOD, GOOD2]), params={"output": "decision"}, Accept="text/csv"),
        200,
    )
    assert text.splitlines() and set(text.splitlines()) <= {"0,,", "1,,"}


@pytest.mark.parametrize(
    "params, headers",
    [
        ({"explain": "true"}, {}),
        ({"explain": "1", "top": "2"}, {}),
        ({}, {"X-Amzn-SageMaker-Custom-Attributes": "explain=yes;top=2"}),
    ],
)
def test_explanations_name_the_features_pushing_up_and_down(server, session, loaded, params, headers):
    plain = expect_status(invoke(session, server, json.dumps([GOOD, GOOD2])), 200)["predictions"]
    doc = expect_status(invoke(session, server, json.dumps([GOOD, GOOD2]), params=params, **headers), 200)
    top = int(params.get("top", headers and 2 or 3))
    for record, without in zip(doc["predictions"], plain):
        assert record["probability"] == pytest.approx(without["probability"], abs=1e-6)
        explanation = record["explanation"]
        assert explanation["up"] or explanation["down"]
        assert len(explanation["up"]) <= top and len(explanation["down"]) <= top
        for item in explanation["up"]:
            assert item["feature"] in loaded.spec.names and item["contribution"] > 0
        for item in explanation["down"]:
            assert item["feature"] in loaded.spec.names and item["contribution"] < 0
        ups = [i["contribution"] for i in explanation["up"]]
        assert ups == sorted(ups, reverse=True)


# ---------------------------------------------------------------- errors: status, code, record and field


@pytest.mark.parametrize(
    "body, content_type, status, code, record, field, fragment",
    [
        (
            json.dumps({**GOOD, "OPERA": 7.5}),
            "application/json",
            400,
            "invalid_record",
            0,
            "OPERA",
            "expected text",
        ),
        (
            json.dumps([GOOD, {**GOOD, "TIPOVUELO": "X"}]),
            "application/json",
            400,
            "invalid_record",
            1,
            "TIPOVUELO",
            "'X'",
        ),
        (
            json.dumps([GOOD, GOOD, {**GOOD, "Fecha-I": "2017-13-01 10:00"}]),
            "application/json",
            400,
            "invalid_record",
            2,
            "Fecha-I",
            "2017-13-01",
        ),
        (
            json.dumps([{**GOOD, "Fecha-I": "01/02/2017 10:00"}]),
            "application/json",
            400,
            "invalid_record",
            0,
            "Fecha-I",
            "YYYY-MM-DD",
        ),
        (
            json.dumps([{k: v for k, v in GOOD.items() if k not in ("Des-I", "SIGLADES")}]),
            "application/json",
            400,
            "invalid_record",
            0,
            "Des-I",
            "missing required field",
        ),
        (
            json.dumps([{**GOOD, "OPERA": 7}]),
            "application/json",
            400,
            "invalid_record",
            0,
            "OPERA",
            "expected text",
        ),
        (
            json.dumps([{**GOOD, "Fecha-I": 20170101}]),
            "application/json",
            400,
            "invalid_record",
            0,
            "Fecha-I",
            "date-time",
        ),
        (
            csv_of(GOOD, {**GOOD, "MES": "x", "Fecha-I": "x"}),
            "text/csv",
            400,
            "invalid_record",
            1,
            "Fecha-I",
            "'x'",
        ),
        (
            csv_of(GOOD, {**GOOD, "Des-I": ""}, header=False),
            "text/csv",
            400,
            "invalid_record",
            1,
            "Des-I",
            "missing",
        ),
        (
            json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "TIPOVUELO": "Q"}),
            "application/jsonlines",
            400,
            "invalid_record",
            1,
            "TIPOVUELO",
            "'Q'",
        ),
        ("", "application/json", 400, "invalid_payload", None, None, "empty body"),
        (b"\xff\xfe\x00", "text/csv", 400, "invalid_payload", None, None, "UTF-8"),
        ('{"instances": [', "application/json", 400, "invalid_payload", None, None, "invalid JSON"),
        ("[]", "application/json", 400, "invalid_payload", None, None, "no records"),
        ("[1]", "application/json", 400, "invalid_payload", 0, None, "expected an object"),
        ('2017-01-01 10:00,"Sky,N,SCFA\n', "text/csv", 400, "invalid_payload", None, None, "invalid CSV"),
        (
            "2017-01-01 10:00,Sky Airline,N\n",
            "text/csv",
            400,
            "invalid_payload",
            0,
            None,
            "expected 4 columns",
        ),
        ("{not json}\n", "application/jsonlines", 400, "invalid_payload", 0, None, "invalid JSON"),
        ("x", "text/plain", 415, "unsupported_media_type", None, None, "text/plain"),
        ("<x/>", "application/xml", 415, "unsupported_media_type", None, None, "application/xml"),
    ],
)
def test_invalid_requests_get_a_4xx_naming_record_and_field(
    server, session, body, content_type, status, code, record, field, fragment
):
    """One-record requests, and several with ``on_error=fail`` (all or nothing): the first invalid record."""
    doc = expect_status(invoke(session, server, body, content_type, params={"on_error": "fail"}), status)
    error = doc["error"]
    assert (error["code"], error["record"], error["field"]) == (code, record, field), error
    assert fragment in error["message"], error
    if record is not None:
        assert (f"record {record}: {field}: " if field else f"record {record}: ") in error["message"], error


def test_on_error_fail_answers_400_listing_every_invalid_record(server, session):
    records = [GOOD] * 5 + [{**GOOD, "OPERA": 7}] + [GOOD2] + [{**GOOD, "TIPOVUELO": "Z"}]
    for params, headers in (({"on_error": "fail"}, {}), ({}, {CUSTOM: "on_error=fail"})):
        error = expect_status(invoke(session, server, json.dumps(records), params=params, **headers), 400)[
            "error"
        ]
        assert (error["record"], error["field"], error["invalid_records"]) == (5, "OPERA", 2), error
        assert [(e["record"], e["field"]) for e in error["errors"]] == [(5, "OPERA"), (7, "TIPOVUELO")]


@pytest.mark.parametrize(
    "params, headers, fragment",
    [
        ({"output": "everything"}, {}, "query parameter output"),
        ({"explain": "maybe"}, {}, "query parameter explain"),
        ({"explain": "true", "top": "0"}, {}, "query parameter top"),
        ({"explain": "true", "top": "\u00b2"}, {}, "query parameter top"),
        (
            {},
            {"X-Amzn-SageMaker-Custom-Attributes": "explain=1;top=+-2"},
            "X-Amzn-SageMaker-Custom-Attributes top",
        ),
        (
            {},
            {"X-Amzn-SageMaker-Custom-Attributes": "output=nope"},
            "X-Amzn-SageMaker-Custom-Attributes output",
        ),
    ],
)
def test_bad_request_options_get_400_naming_the_parameter(server, session, params, headers, fragment):
    error = expect_status(invoke(session, server, json.dumps(GOOD), params=params, **headers), 400)["error"]
    assert error["code"] == "invalid_parameter" and fragment in error["message"], error


@pytest.mark.parametrize(
    "accept, params", [("text/html", {}), ("image/png", {}), ("text/csv", {"explain": "1"})]
)
def test_unsupported_accept_gets_406(server, session, accept, params):
    error = expect_status(invoke(session, server, json.dumps(GOOD), params=params, Accept=accept), 406)[
        "error"
    ]
    assert error["code"] == "not_acceptable"


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("GET", "/invocations", 405, "method_not_allowed"),
        ("PUT", "/invocations", 405, "method_not_allowed"),
        ("POST", "/ping", 405, "method_not_allowed"),
        ("DELETE", "/execution-parameters", 405, "method_not_allowed"),
        ("OPTIONS", "/invocations", 405, "method_not_allowed"),
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/invocations/extra", 404, "not_found"),
    ],
)
def test_wrong_methods_and_paths_get_json_errors(server, session, loaded, method, path, status, code):
    response = session.request(method, f"{server.url}{path}", timeout=10)
    error = expect_status(response, status)["error"]
    assert error["code"] == code
    assert response.headers["X-Model-Version"] == loaded.version


def test_a_chunked_body_over_the_limit_gets_413_not_a_cut_answer(server):
    line = (",".join(GOOD[f] for f in FIELDS) + "\n").encode()
    chunks = [line * 1000] * (1024 * 1024 // (len(line) * 1000) + 1)  # just over the 1 MB limit in all
    response = requests.post(
        f"{server.url}/invocations",
        data=iter(chunks),
        timeout=30,
        headers={"Content-Type": "text/csv", "Connection": "close"},
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413, response.text[:500]
    assert response.json()["error"]["code"] == "request_entity_too_large"


def test_a_chunked_body_under_the_limit_is_served_whole(server, session):
    line = (",".join(GOOD[f] for f in FIELDS) + "\n").encode()
    response = session.post(
        f"{server.url}/invocations",
        data=iter([line * 500, line * 500]),
        timeout=30,
        headers={"Content-Type": "text/csv"},
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert len(expect_status(response, 200)["predictions"]) == 1000


def test_json_lines_split_only_at_newlines_not_at_unicode_line_separators(server, session):
    body = json.dumps({**GOOD, "note": "a\u2028b\x0cc"}, ensure_ascii=False) + "\n" + json.dumps(GOOD2)
    doc = expect_status(
        invoke(session, server, body, "application/jsonlines", Accept="application/json"), 200
    )
    assert len(doc["predictions"]) == 2


def test_an_error_echoes_at_most_a_short_part_of_a_huge_value(server, session):
    error = expect_status(invoke(session, server, json.dumps({**GOOD, "TIPOVUELO": "X" * 200_000})), 400)[
        "error"
    ]
    assert (error["record"], error["field"]) == (0, "TIPOVUELO")
    assert len(error["message"]) < 3000 and "200002 characters" in error["message"], error["message"][:300]


def test_csv_values_are_read_without_surrounding_spaces(server, session):
    body = "Fecha-I, OPERA, TIPOVUELO, Des-I\n2017-01-01 23:30:00, Grupo LATAM, I, KMIA\n"
    assert len(expect_status(invoke(session, server, body, "text/csv"), 200)["predictions"]) == 1


def raw_http(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 exchange on a plain socket: (status, body); for requests clients cannot send."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_out, _, rest = data.partition(b"\r\n\r\n")
        length = int(
            next(
                (
                    line.split(b":")[1]
                    for line in head_out.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                b"0",
            )
        )
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head_out.split(b" ")[1]), rest


def test_body_over_the_limit_gets_413_before_it_is_read(server):
    limit = 1024 * 1024  # SAGEMAKER_MAX_PAYLOAD_IN_MB=1 for this server
    status, body = raw_http(
        server.port,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (limit + 1),
    )
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "request_entity_too_large"


def test_body_over_the_limit_sent_whole_gets_413_and_the_server_carries_on(server, session):
    body = csv_of(*[GOOD] * 30000).encode()
    assert len(body) > 1024 * 1024
    try:
        response = requests.post(
            f"{server.url}/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert response.status_code == 413, response.text[:500]
    except requests.ConnectionError:  # the server answered 413 and closed before the client had sent it all
        pass
    assert session.get(f"{server.url}/ping", timeout=10).status_code == 200
    assert expect_status(invoke(session, server, json.dumps(GOOD)), 200)["predictions"]


def test_body_just_under_the_limit_is_served(server, session):
    records = [GOOD, GOOD2] * 4000
    body = csv_of(*records)
    assert len(body) < 1024 * 1024
    doc = expect_status(invoke(session, server, body, "text/csv"), 200)
    assert len(doc["predictions"]) == len(records)


def test_every_input_error_type_has_a_4xx_status():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for cls in subclasses(InputError):
        assert 400 <= status_for(cls.__new__(cls)) < 500, cls
    assert set(_STATUS.values()) == {400, 406, 415}


# ---------------------------------------------------------------- predictions equal the in-process ones


def test_served_predictions_equal_the_in_process_ones(server, session, loaded, synthetic_csv):
    with open(synthetic_csv, encoding="utf-8", newline="") as f:
        records = [{k: row[k] for k in FIELDS} for row, _ in zip(csv.DictReader(f), range(1500))]
    raw = {name: [r.get(name) for r in records] for name in loaded.input_schema.fields}
    columns, errors = parse_columns(raw, len(records), loaded.input_schema)
    assert not errors
    expected = loaded.predictor.predict_proba(build_features(columns, loaded.spec))
    decisions = expected >= loaded.threshold
    for round_ in ("cold", "cached"):
        doc = expect_status(invoke(session, server, csv_of(*records), "text/csv"), 200)
        served = np.array([p["probability"] for p in doc["predictions"]])
        assert np.array_equal(served, expected.astype(np.float64)), round_
        assert [p["decision"] for p in doc["predictions"]] == decisions.tolist(), round_
    singles = [
        expect_status(invoke(session, server, json.dumps(r)), 200)["predictions"][0] for r in records[:50]
    ]
    assert [s["probability"] for s in singles] == expected[:50].astype(np.float64).tolist()


def test_served_predictions_agree_with_the_metrics_train_wrote(server, session, loaded, model_dir):
    metrics = json.loads((Path(model_dir) / "metrics.json").read_text())
    assert json.loads(json.dumps(loaded.threshold)) == metrics["validation"]["threshold"]


# ---------------------------------------------------------------- concurrency


def test_two_thousand_requests_from_sixteen_threads_all_succeed(server):
    bodies = [
        (json.dumps(GOOD), "application/json"),
        (csv_of(GOOD, GOOD2), "text/csv"),
        (json.dumps([GOOD2] * 10), "application/json"),
    ]

    def worker(k: int) -> list[str]:
        problems = []
        with requests.Session() as s:
            for i in range(125):
                body, ctype = bodies[(k + i) % len(bodies)]
                r = s.post(
                    f"{server.url}/invocations", data=body, headers={"Content-Type": ctype}, timeout=30
                )
                if r.status_code != 200:
                    problems.append(f"{r.status_code} {r.text[:200]}")
        return problems

    with ThreadPoolExecutor(16) as pool:
        problems = [p for result in pool.map(worker, range(16)) for p in result]
    assert not problems, problems[:5]


# ---------------------------------------------------------------- every flight gets an answer (issue 10)

UNKNOWN = {**GOOD, "Des-I": "YMML", "OPERA": "New Air"}  # never seen in training


def lines_of(response) -> list[str]:
    return response.text.splitlines()


@pytest.mark.parametrize(
    "body, content_type, accept",
    [
        (json.dumps([GOOD, UNKNOWN]), "application/json", "application/json"),
        (
            json.dumps(GOOD) + "\n" + json.dumps(UNKNOWN) + "\n",
            "application/jsonlines",
            "application/jsonlines",
        ),
        (csv_of(GOOD, UNKNOWN), "text/csv", "text/csv"),
        (csv_of(GOOD, UNKNOWN, header=False), "text/csv", "application/json"),
    ],
)
def test_unknown_values_are_scored_as_missing_and_named_in_every_format(
    server, session, loaded, body, content_type, accept
):
    response = invoke(session, server, body, content_type, Accept=accept)
    expect_status(response, 200)
    assert response.headers["X-Invalid-Records"] == "0"
    if accept == "text/csv":
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == ["probability", "decision", "unknown", "error"]  # the request had a header line
        assert [r[2] for r in rows[1:]] == ["", "OPERA;Des-I"] and all(r[3] == "" for r in rows[1:])
        return
    records = (
        [json.loads(x) for x in lines_of(response)]
        if accept == "application/jsonlines"
        else response.json()["predictions"]
    )
    assert "unknown" not in records[0] and records[1]["unknown"] == ["OPERA", "Des-I"]
    # scored exactly as training scores a missing value: NaN codes for both categorical features
    X = build_features(
        parse_columns({k: [UNKNOWN.get(k)] for k in FIELDS}, 1, loaded.input_schema)[0], loaded.spec
    )
    assert np.isnan(X[0, list(loaded.spec.names).index("destination")])
    assert records[1]["probability"] == float(loaded.predictor.predict_proba(X)[0])


@pytest.mark.parametrize(
    "params, headers",
    [({"unknown": "reject"}, {}), ({}, {CUSTOM: "unknown=reject"})],
)
@pytest.mark.parametrize(
    "body, content_type",
    [
        (json.dumps([GOOD, UNKNOWN]), "application/json"),
        (json.dumps(GOOD) + "\n" + json.dumps(UNKNOWN) + "\n", "application/jsonlines"),
        (csv_of(GOOD, UNKNOWN), "text/csv"),
    ],
)
def test_unknown_reject_refuses_a_value_outside_the_vocabulary(
    server, session, params, headers, body, content_type
):
    error = expect_status(invoke(session, server, json.dumps(UNKNOWN), params=params, **headers), 400)[
        "error"
    ]
    assert (error["code"], error["record"], error["field"]) == ("invalid_record", 0, "OPERA"), error
    response = invoke(session, server, body, content_type, params=params, **headers)
    doc = expect_status(response, 200)
    assert response.headers["X-Invalid-Records"] == "1"
    assert doc["predictions"][1]["error"]["field"] == "OPERA" and "probability" in doc["predictions"][0]
    assert "unknown value 'New Air'" in doc["predictions"][1]["error"]["message"]


def test_matching_is_trimmed_and_case_insensitive_in_every_format(server, session):
    odd = {**GOOD, "OPERA": " grupo latam ", "Des-I": "kmia", "TIPOVUELO": "i"}
    expected = expect_status(invoke(session, server, json.dumps(GOOD)), 200)["predictions"]
    for body, ctype in ((json.dumps(odd), "application/json"), (csv_of(odd), "text/csv")):
        assert expect_status(invoke(session, server, body, ctype), 200)["predictions"] == expected


@pytest.mark.parametrize(
    "when, same_as",
    [
        ("2017-01-01T23:30:00", "2017-01-01 23:30:00"),
        ("2017-01-01T23:30", "2017-01-01 23:30:00"),
        ("2017-01-01T23:30:00.000", "2017-01-01 23:30:00"),
        ("2017-01-02T02:30:00.000Z", "2017-01-01 23:30:00"),  # Santiago in January: UTC-3
        ("2017-01-01T22:30:00-04:00", "2017-01-01 23:30:00"),
    ],
)
def test_timestamp_forms_are_read_as_santiago_local_time(server, session, when, same_as):
    got = expect_status(invoke(session, server, json.dumps({**GOOD, "Fecha-I": when})), 200)
    want = expect_status(invoke(session, server, json.dumps({**GOOD, "Fecha-I": same_as})), 200)
    assert got["predictions"] == want["predictions"]


@pytest.mark.parametrize(
    "when", ["0001-07-14 10:00", "2017-07-14", "14/07/2017 10:00", "2017-07-14T10:00+25:00"]
)
def test_timestamps_out_of_range_or_shape_are_refused(server, session, when):
    error = expect_status(invoke(session, server, json.dumps({**GOOD, "Fecha-I": when})), 400)["error"]
    assert error["field"] == "Fecha-I", error


# ---------------------------------------------------------------- a bad record never sinks the good ones


@pytest.mark.parametrize(
    "body, content_type, accept",
    [
        (json.dumps([GOOD, {**GOOD, "TIPOVUELO": "X"}, GOOD2]), "application/json", "application/json"),
        (
            "\n".join(json.dumps(r) for r in (GOOD, {**GOOD, "TIPOVUELO": "X"}, GOOD2)) + "\n",
            "application/jsonlines",
            "application/jsonlines",
        ),
        (csv_of(GOOD, {**GOOD, "TIPOVUELO": "X"}, GOOD2, header=False), "text/csv", "text/csv"),
    ],
)
def test_an_invalid_record_gets_an_error_in_its_place_and_the_others_are_scored(
    server, session, body, content_type, accept
):
    expected = expect_status(invoke(session, server, json.dumps([GOOD, GOOD2])), 200)["predictions"]
    response = invoke(session, server, body, content_type, Accept=accept)
    expect_status(response, 200)
    assert response.headers["X-Invalid-Records"] == "1"
    if accept == "text/csv":
        rows = list(csv.reader(io.StringIO(response.text)))
        assert len(rows) == 3 and rows[1][:3] == ["", "", ""]
        assert rows[1][3].startswith("invalid_record: record 1: TIPOVUELO: ")
        assert [float(rows[i][0]) for i in (0, 2)] == [p["probability"] for p in expected]
        return
    records = (
        [json.loads(x) for x in lines_of(response)]
        if accept == "application/jsonlines"
        else response.json()["predictions"]
    )
    assert [records[0], records[2]] == expected
    assert records[1] == {
        "error": {
            "code": "invalid_record",
            "message": records[1]["error"]["message"],
            "record": 1,
            "field": "TIPOVUELO",
        }
    }
    assert records[1]["error"]["message"].startswith("record 1: TIPOVUELO: ")


def test_nan_written_by_pythons_json_is_one_records_missing_value_not_an_unreadable_body(server, session):
    """``json.dumps(float("nan"))`` writes ``NaN``, which strict JSON parsers refuse: the body is still read
    and only that record is invalid (OPERA missing), in its place."""
    body = json.dumps([GOOD, {**GOOD, "OPERA": float("nan")}, GOOD2])
    assert "NaN" in body
    response = invoke(session, server, body)
    predictions = expect_status(response, 200)["predictions"]
    assert response.headers["X-Invalid-Records"] == "1"
    assert "probability" in predictions[0] and "probability" in predictions[2]
    assert predictions[1]["error"]["field"] == "OPERA"


def test_a_value_nested_too_deeply_to_show_is_a_400_naming_its_field(server, session):
    """A list nested ~1,000 levels deep is read by the JSON decoder but cannot be repr()'d back."""
    body = '{"Fecha-I": "2017-01-01 23:30", "OPERA": ' + "[" * 1000 + "]" * 1000 + ', "Des-I": "KMIA"}'
    error = expect_status(invoke(session, server, body), 400)["error"]
    assert error["field"] == "OPERA" and "nested too deeply" in error["message"], error


def test_application_json_with_one_object_per_line_is_read_as_json_lines(server, session):
    body = json.dumps(GOOD) + "\n" + json.dumps(GOOD2) + "\n"
    assert len(expect_status(invoke(session, server, body, "application/json"), 200)["predictions"]) == 2


def test_a_latin_1_csv_body_is_read_by_its_charset(server, session):
    body = csv_of(GOOD, GOOD2).encode("latin-1")
    doc = expect_status(invoke(session, server, body, "text/csv; charset=latin-1"), 200)
    assert len(doc["predictions"]) == 2


# ---------------------------------------------------------------- robust under odd requests


@pytest.mark.parametrize("path", ["//invocations", "/invocations/", "///invocations"])
def test_paths_are_normalised_before_routing(server, session, path):
    response = session.post(
        f"{server.url}{path}", data=json.dumps(GOOD), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert len(expect_status(response, 200)["predictions"]) == 1


def test_explanations_are_bounded_per_request(server, session):
    from scl_delay.scoring import MAX_EXPLAINED_RECORDS

    body = json.dumps([GOOD] * (MAX_EXPLAINED_RECORDS + 1))
    error = expect_status(invoke(session, server, body, params={"explain": "true"}), 400)["error"]
    assert error["code"] == "invalid_parameter" and str(MAX_EXPLAINED_RECORDS) in error["message"]
    started = time.monotonic()
    doc = expect_status(
        invoke(session, server, json.dumps([GOOD] * MAX_EXPLAINED_RECORDS), params={"explain": "1"}), 200
    )
    assert len(doc["predictions"]) == MAX_EXPLAINED_RECORDS and time.monotonic() - started < 20


def test_gunicorns_own_error_pages_are_json(server):
    status, body = raw_http(
        server.port, b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"
    )
    assert status in (400, 431), body
    assert json.loads(body)["error"]["code"], body
    status, body = raw_http(server.port, b"BAD REQUEST LINE\r\n\r\n")
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_request", body


# ---------------------------------------------------------------- the earlier service's clients (issue 16)

EARLIER = {"OPERA": "Sky Airline", "SIGLADES": "Calama", "FECHA_PROGRAMADA": "2017-11-27 13:00:00"}
EARLIER_AS_SCL = {"OPERA": "Sky Airline", "Des-I": "SCCF", "TIPOVUELO": "N", "Fecha-I": "2017-11-27 13:00:00"}


def test_the_earlier_services_example_request_works_on_both_routes(server, session, loaded):
    assert loaded.input_schema.city_airports["Calama"] == "SCCF"
    expected = expect_status(invoke(session, server, json.dumps(EARLIER_AS_SCL)), 200)["predictions"][0]
    doc = expect_status(invoke(session, server, json.dumps(EARLIER)), 200)["predictions"][0]
    assert doc == expected
    response = session.post(f"{server.url}/predict_delay_probability", json=EARLIER, timeout=10)
    legacy = expect_status(response, 200)
    label = "Alta probabilidad de atraso" if expected["decision"] else "Baja probabilidad de atraso"
    assert legacy == {"delay_probability": expected["probability"], "clase": [label]}
    several = expect_status(
        session.post(f"{server.url}/predict_delay_probability", json=[EARLIER, EARLIER], timeout=10), 200
    )
    assert several == [legacy, legacy]
    one_in_a_list = session.post(f"{server.url}/predict_delay_probability", json=[EARLIER], timeout=10)
    assert expect_status(one_in_a_list, 200) == [legacy]


def test_a_city_with_two_airports_maps_to_the_busier_one(server, session, loaded, synthetic_csv):
    import pandas as pd

    frame = pd.read_csv(synthetic_csv, dtype=str)
    counts = frame[frame["SIGLADES"] == "Buenos Aires"]["Des-I"].value_counts()
    assert len(counts) == 2, counts  # SAEZ and SABE in the synthetic data, as in the real one
    assert loaded.input_schema.city_airports["Buenos Aires"] == counts.index[0]
    as_city = expect_status(invoke(session, server, json.dumps({**EARLIER, "SIGLADES": "Buenos Aires"})), 200)
    as_code = expect_status(
        invoke(session, server, json.dumps({**EARLIER_AS_SCL, "Des-I": counts.index[0], "TIPOVUELO": "I"})),
        200,
    )
    assert as_city["predictions"] == as_code["predictions"]


@pytest.mark.parametrize("route", ["/invocations", "/predict_delay_probability"])
def test_a_tipovuelo_contradicting_the_destination_names_both_fields(server, session, route):
    response = session.post(f"{server.url}{route}", json={**EARLIER, "TIPOVUELO": "I"}, timeout=10)
    error = expect_status(response, 400)["error"]
    assert (error["record"], error["field"]) == (0, "TIPOVUELO")
    assert "TIPOVUELO 'I' contradicts Des-I 'SCCF'" in error["message"]


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"OPERA": "Sky Airline", "SIGLADES": "Calama"}, 400, "Fecha-I"),
        ({**EARLIER, "FECHA_PROGRAMADA": "mañana"}, 400, "FECHA_PROGRAMADA"),
        ({**EARLIER, "SIGLADES": "Atlantis"}, 400, "TIPOVUELO"),
        ("not json", 400, None),
    ],
)
def test_the_earlier_route_answers_bad_input_as_invocations_does(server, session, body, status, field):
    data = body if isinstance(body, str) else json.dumps(body)
    for route in ("/invocations", "/predict_delay_probability"):
        response = session.post(
            f"{server.url}{route}", data=data, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert expect_status(response, status)["error"]["field"] == field, route


def test_model_status_describes_the_model(server, session, loaded):
    doc = expect_status(session.get(f"{server.url}/model_status", timeout=10), 200)
    assert doc["model_version"] == loaded.version and doc["model_file"] == "booster.ubj"
    assert doc["model_type"].startswith("XGBoost") and doc["feature_set"] == loaded.spec.feature_set
    assert doc["input_variables"] == list(loaded.input_schema.fields)
    example = expect_status(
        session.post(f"{server.url}/predict_delay_probability", json=doc["input_example"]), 200
    )
    assert 0 <= example["delay_probability"] <= 1


@pytest.mark.parametrize(
    "workers, payload_mb, expected",
    [
        (2, 6, (2, 6)),
        (64, 6, (16, 6)),  # 64 x 6 = 384 MB would break AWS's 100 MB limit
        (4, 200, (1, 100)),
        (3, 0, (3, 0)),  # 0: no limit, as MaxPayloadInMB=0 means
    ],
)
def test_execution_parameters_stay_within_aws_limits(workers, payload_mb, expected):
    from scl_delay.server import execution_parameters
    from scl_delay.settings import ServeSettings

    settings = ServeSettings.from_env(
        {"MODEL_SERVER_WORKERS": str(workers), "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(payload_mb)}
    )
    doc = execution_parameters(settings)
    assert (doc["MaxConcurrentTransforms"], doc["MaxPayloadInMB"]) == expected
    assert doc["MaxConcurrentTransforms"] * doc["MaxPayloadInMB"] <= 100
    # gunicorn does not balance connections: all of them may land on one worker, which keeps one for /ping
    assert settings.threads == doc["MaxConcurrentTransforms"] + 1
