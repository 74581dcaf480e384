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
from processes import ROOT, ServerProcess, venv_env

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
    process = ServerProcess(
        [str(ROOT / "container" / "serve")],
        venv_env(
            OPT_ML_DIR=str(trained_opt_ml),
            SM_MODEL_DIR=str(model_dir),
            SAGEMAKER_MAX_PAYLOAD_IN_MB="1",
            MODEL_SERVER_WORKERS="2",
        ),
        log_dir=tmp_path_factory.mktemp("serve-log"),
    )
    try:
        process.wait_ping(deadline_s=30)
        process.startup_s = time.monotonic() - process.started
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
                {"probability": float(p), "decision": d == "1"} for p, d in csv.reader(io.StringIO(t))
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
    assert text.splitlines() and set(text.splitlines()) <= {"0", "1"}


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
            json.dumps({**GOOD, "OPERA": "XX Air"}),
            "application/json",
            400,
            "invalid_record",
            0,
            "OPERA",
            "'XX Air'",
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
            json.dumps([{k: v for k, v in GOOD.items() if k != "Des-I"}]),
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
        (csv_of(GOOD, {**GOOD, "OPERA": "Nope"}), "text/csv", 400, "invalid_record", 1, "OPERA", "'Nope'"),
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
            json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "TIPOVUELO": "i"}),
            "application/jsonlines",
            400,
            "invalid_record",
            1,
            "TIPOVUELO",
            "'i'",
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
            None,
            None,
            "expected 4 columns",
        ),
        ("{not json}\n", "application/jsonlines", 400, "invalid_payload", None, None, "invalid JSON"),
        ("x", "text/plain", 415, "unsupported_media_type", None, None, "text/plain"),
        ("<x/>", "application/xml", 415, "unsupported_media_type", None, None, "application/xml"),
    ],
)
def test_invalid_requests_get_a_4xx_naming_record_and_field(
    server, session, body, content_type, status, code, record, field, fragment
):
    doc = expect_status(invoke(session, server, body, content_type), status)
    error = doc["error"]
    assert (error["code"], error["record"], error["field"]) == (code, record, field), error
    assert fragment in error["message"], error
    if record is not None:
        assert error["message"].startswith(f"record {record}: {field}: " if field else f"record {record}: ")


def test_one_invalid_record_fails_the_whole_request(server, session):
    """The policy is all-or-nothing: no partial answers, the first bad record is named."""
    records = [GOOD] * 5 + [{**GOOD, "OPERA": "XX"}] + [GOOD2] + [{**GOOD, "TIPOVUELO": "Z"}]
    error = expect_status(invoke(session, server, json.dumps(records)), 400)["error"]
    assert (error["record"], error["field"]) == (5, "OPERA")


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
    error = expect_status(invoke(session, server, json.dumps({**GOOD, "OPERA": "X" * 200_000})), 400)["error"]
    assert (error["record"], error["field"]) == (0, "OPERA")
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
    raw = {name: [r[name] for r in records] for name in loaded.input_schema.fields}
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
