"""codec.py: request bodies -> raw columns, predictions -> response bodies. Pure: no server."""

from __future__ import annotations

import json

import pytest

from scl_delay.codec import CSV, JSON, JSONLINES, Explanation, decode_records, encode_predictions, negotiate
from scl_delay.errors import NotAcceptableError, PayloadError, UnsupportedMediaTypeError

FIELDS = ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I")
R1 = {
    "Fecha-I": "2017-01-01 23:30:00",
    "OPERA": "Grupo LATAM",
    "TIPOVUELO": "I",
    "Des-I": "KMIA",
    "Vlo-I": "226",
}
R2 = {"Fecha-I": "2017-03-02 08:05", "OPERA": "Sky Airline", "TIPOVUELO": "N", "Des-I": "SCFA"}
EXPECTED = {name: [R1[name], R2[name]] for name in FIELDS}


@pytest.mark.parametrize(
    "body, content_type",
    [
        (json.dumps({"instances": [R1, R2]}), "application/json"),
        (json.dumps({"flights": [R1, R2]}), "application/json; charset=utf-8"),
        (json.dumps([R1, R2]), "Application/JSON"),
        (json.dumps([R1, R2]), None),
        ("\n".join(json.dumps(r) for r in (R1, R2)) + "\n", "application/jsonlines"),
        ("\n".join(json.dumps(r) for r in (R1, R2)), "application/x-ndjson"),
        (
            (
                "Vlo-I,Des-I,TIPOVUELO,OPERA,Fecha-I\n226,KMIA,I,Grupo LATAM,2017-01-01 23:30:00\n"
                ",SCFA,N,Sky Airline,2017-03-02 08:05\n"
            ),
            "text/csv",
        ),
        ("2017-01-01 23:30:00,Grupo LATAM,I,KMIA\r\n2017-03-02 08:05,Sky Airline,N,SCFA\r\n", "text/csv"),
        ('"2017-01-01 23:30:00","Grupo LATAM",I,KMIA\n2017-03-02 08:05,Sky Airline,N,SCFA\n\n', "text/csv"),
        (
            (
                "\ufeffFecha-I,OPERA,TIPOVUELO,Des-I\n2017-01-01 23:30:00,Grupo LATAM,I,KMIA\n"
                "2017-03-02 08:05,Sky Airline,N,SCFA"
            ),
            "text/csv",
        ),
    ],
)
def test_decode_records_reads_every_format_into_the_schema_columns(body, content_type):
    raw, n = decode_records(body.encode(), content_type, FIELDS)
    assert n == 2
    assert raw == EXPECTED


def test_decode_records_reads_one_json_object_as_one_record():
    raw, n = decode_records(json.dumps(R1).encode(), "application/json", FIELDS)
    assert (raw, n) == ({name: [R1[name]] for name in FIELDS}, 1)


def test_decode_records_leaves_absent_fields_as_none_for_validation_to_name():
    raw, n = decode_records(b'[{"OPERA": "Sky Airline"}]', "application/json", FIELDS)
    assert n == 1 and raw["Fecha-I"] == [None] and raw["OPERA"] == ["Sky Airline"]


def test_decode_records_omits_csv_header_columns_the_model_does_not_have():
    raw, n = decode_records(b"OPERA,TIPOVUELO\nSky Airline,N\n", "text/csv", FIELDS)
    assert n == 1 and raw == {"OPERA": ["Sky Airline"], "TIPOVUELO": ["N"]}


@pytest.mark.parametrize(
    "body, content_type, fragment, line",
    [
        (b"", "application/json", "empty body", None),
        (b"  \n", "text/csv", "empty body", None),
        (b"\xff\xfe{}", "application/json", "not UTF-8", None),
        (b'{"instances": [', "application/json", "invalid JSON", 1),
        (b"[]", "application/json", "no records", None),
        (b'{"instances": {}}', "application/json", "must be a list", None),
        (b"[1, 2]", "application/json", "record 0: expected an object", None),
        (b'"text"', "application/json", "expected a record object", None),
        (b'{"OPERA": "x"}\nnot json\n', "application/jsonlines", "invalid JSON", 2),
        (b'{"OPERA": "x"}\n[1]\n', "application/jsonlines", "record 1: expected an object", 2),
        (b"Fecha-I,OPERA,TIPOVUELO,Des-I\n", "text/csv", "header but no records", None),
        (b"Fecha-I,OPERA,TIPOVUELO,Des-I\n2017-01-01 10:00,x,I\n", "text/csv", "expected 4 columns", 2),
        (b"2017-01-01 10:00,x,I,KMIA,extra\n", "text/csv", "expected 4 columns", 1),
        (b'2017-01-01 10:00,"x,I,KMIA\n', "text/csv", "invalid CSV", 1),
    ],
)
def test_decode_records_rejects_unreadable_bodies_with_the_reason(body, content_type, fragment, line):
    with pytest.raises(PayloadError) as info:
        decode_records(body, content_type, FIELDS)
    assert fragment in str(info.value)
    assert info.value.line == line


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded"],
)
def test_decode_records_rejects_other_media_types(content_type):
    with pytest.raises(UnsupportedMediaTypeError, match="unsupported Content-Type"):
        decode_records(b"{}", content_type, FIELDS)


@pytest.mark.parametrize(
    "accept, kind",
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/csv", CSV),
        ("application/jsonlines", JSONLINES),
        ("application/x-jsonlines", JSONLINES),
        ("text/*", CSV),
        ("text/html, text/csv;q=0.9", CSV),
        ("application/json;q=0, text/csv", CSV),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
    ],
)
def test_negotiate_picks_the_first_supported_type(accept, kind):
    assert negotiate(accept) == kind


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png, text/plain"])
def test_negotiate_refuses_unsupported_accept(accept):
    with pytest.raises(NotAcceptableError, match="cannot answer"):
        negotiate(accept)


P, D = [0.25, 0.75], [False, True]


def test_encode_predictions_json_carries_probability_decision_and_version():
    doc = json.loads(encode_predictions(P, D, 0.5, ("probability", "decision"), "v1", JSON))
    assert doc == {
        "predictions": [{"probability": 0.25, "decision": False}, {"probability": 0.75, "decision": True}],
        "model_version": "v1",
        "threshold": 0.5,
    }


@pytest.mark.parametrize(
    "outputs, csv_text, record",
    [
        (("probability", "decision"), "0.25,0\n0.75,1\n", {"probability": 0.25, "decision": False}),
        (("probability",), "0.25\n0.75\n", {"probability": 0.25}),
        (("decision",), "0\n1\n", {"decision": False}),
    ],
)
def test_encode_predictions_follows_the_output_selection(outputs, csv_text, record):
    assert encode_predictions(P, D, 0.5, outputs, "v1", CSV).decode() == csv_text
    lines = encode_predictions(P, D, 0.5, outputs, "v1", JSONLINES).decode().splitlines()
    assert json.loads(lines[0]) == record and len(lines) == 2
    assert json.loads(encode_predictions(P, D, 0.5, outputs, "v1", JSON))["predictions"][0] == record


def test_encode_predictions_adds_explanations_to_json_but_refuses_them_in_csv():
    explanations = [Explanation((("hour", 0.5),), (("airline", -0.25),))] * 2
    doc = json.loads(encode_predictions(P, D, 0.5, ("probability",), "v1", JSON, explanations))
    assert doc["predictions"][0]["explanation"] == {
        "up": [{"feature": "hour", "contribution": 0.5}],
        "down": [{"feature": "airline", "contribution": -0.25}],
    }
    with pytest.raises(NotAcceptableError):
        encode_predictions(P, D, 0.5, ("probability",), "v1", CSV, explanations)
