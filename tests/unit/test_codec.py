"""codec.py: request bodies -> records (one slot per line), answers -> response bodies. Pure: no server."""

from __future__ import annotations

import csv
import io
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scl_delay.codec import (
    CSV,
    ENCODERS,
    JSON,
    JSONLINES,
    Answers,
    Explanation,
    csv_rows,
    decode_records,
    legacy_body,
    negotiate,
)
from scl_delay.errors import InvalidRecordError, NotAcceptableError, PayloadError, UnsupportedMediaTypeError
from scl_delay.schema import SCL_COLUMNS

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


def decode(body, content_type, fields=FIELDS):
    return decode_records(body if isinstance(body, bytes) else body.encode(), content_type, fields)


@pytest.mark.parametrize(
    "body, content_type",
    [
        (json.dumps({"instances": [R1, R2]}), "application/json"),
        (json.dumps({"flights": [R1, R2]}), "application/json; charset=utf-8"),
        (json.dumps([R1, R2]), "Application/JSON"),
        (json.dumps([R1, R2]), None),
        ("\n".join(json.dumps(r) for r in (R1, R2)) + "\n", "application/jsonlines"),
        ("\n".join(json.dumps(r) for r in (R1, R2)), "application/x-ndjson"),
        ("\n".join(json.dumps(r) for r in (R1, R2)) + "\n", "application/json"),  # one object per line
        (
            (
                "Vlo-I,Des-I,TIPOVUELO,OPERA,Fecha-I\n226,KMIA,I,Grupo LATAM,2017-01-01 23:30:00\n"
                ",SCFA,N,Sky Airline,2017-03-02 08:05\n"
            ),
            "text/csv",
        ),
        ("2017-01-01 23:30:00,Grupo LATAM,I,KMIA\r\n2017-03-02 08:05,Sky Airline,N,SCFA\r\n", "text/csv"),
        ('"2017-01-01 23:30:00","Grupo LATAM",I,KMIA\n2017-03-02 08:05,Sky Airline,N,SCFA\n', "text/csv"),
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
    records = decode(body, content_type)
    assert (records.count, records.problems) == (2, {})
    assert records.columns == EXPECTED


def test_a_csv_body_in_latin_1_is_read_when_its_charset_says_so():
    body = "Fecha-I,OPERA,TIPOVUELO,Des-I\n2017-01-01 23:30:00,Línea Aérea,I,KMIA\n".encode("latin-1")
    assert decode(body, "text/csv; charset=ISO-8859-1").columns["OPERA"] == ["Línea Aérea"]
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode(body, "text/csv")
    with pytest.raises(UnsupportedMediaTypeError, match="unsupported charset"):
        decode(body, "text/csv; charset=klingon")


def test_the_18_column_scl_layout_is_recognised_by_its_width():
    row = dict.fromkeys(SCL_COLUMNS, "") | {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Sky Airline"}
    line = ",".join(row[c] for c in SCL_COLUMNS)
    records = decode(f"{line}\n2017-03-02 08:05,Sky Airline,N,SCFA\n", "text/csv")
    assert records.columns["OPERA"] == ["Sky Airline", "Sky Airline"] and records.problems == {}


def test_decode_records_reads_one_json_object_as_one_record():
    records = decode(json.dumps(R1), "application/json")
    assert (records.columns, records.count, records.single) == (
        {name: [R1[name]] for name in FIELDS},
        1,
        True,
    )


def test_decode_records_leaves_absent_fields_as_none_for_validation_to_name():
    records = decode('[{"OPERA": "Sky Airline"}]', "application/json")
    assert records.count == 1 and records.columns["Fecha-I"] == [None]


def test_every_line_is_one_slot_and_an_unreadable_line_is_a_problem_in_its_place():
    body = '{"OPERA": "a"}\n\nnot json\n[1]\n{"OPERA": "b"}\n'
    records = decode(body, "application/jsonlines")
    assert records.count == 5 and records.columns["OPERA"] == ["a", None, None, None, "b"]
    assert {i: (e.line, e.record) for i, e in records.problems.items()} == {1: (2, 1), 2: (3, 2), 3: (4, 3)}
    assert "blank line" in str(records.problems[1])


@pytest.mark.parametrize(
    "body, slots, problems",
    [
        (",,,\n2017-01-01 10:00,A,I,KMIA\n2017-01-01 11:00,A,I,KMIA\n", 3, {}),
        ('",,,"\n2017-01-01 10:00,A,I,KMIA\n', 2, {0}),  # one quoted value: same reader, same lines
        ("2017-01-01 10:00,A,I,KMIA\n\n2017-01-01 11:00,A,I,KMIA\n", 3, {1}),
        ("2017-01-01 10:00,A,I\n2017-01-01 11:00,A,I,KMIA", 2, {0}),
        ("Fecha-I,OPERA,TIPOVUELO,Des-I\n2017-01-01 10:00,A,I\n2017-01-01 10:00,A,I,X\n", 2, {0}),
        ("\r,,,\n2017-01-01 10:00,A,I,KMIA\r\n", 2, set()),  # a lone CR is no line break
    ],
)
def test_csv_gives_one_slot_per_line_whatever_the_quoting(body, slots, problems):
    records = decode(body, "text/csv")
    assert records.count == slots and set(records.problems) == set(problems)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="ab ,\n", max_size=4), max_size=5), max_size=6))
def test_the_fast_csv_path_reads_exactly_what_the_csv_module_reads(rows):
    text = "\n".join(",".join(r) for r in rows if "\n" not in "".join(r))
    if "\n" in "".join(",".join(r) for r in rows):
        return
    fast = [row for _, row in csv_rows(text)]
    reference = list(csv.reader(io.StringIO(text, newline="")))
    assert fast == reference


@pytest.mark.parametrize(
    "body, content_type, fragment, line",
    [
        (b"", "application/json", "empty body", None),
        (b"  \n", "text/csv", "empty body", None),
        (b"\xff\xfe{}", "application/json", "not UTF-8", None),
        (b'{"instances": [', "application/json", "invalid JSON", 1),
        (b"[]", "application/json", "no records", None),
        (b'{"instances": {}}', "application/json", "must be a list", None),
        (b'"text"', "application/json", "expected a record object", None),
        (b"Fecha-I,OPERA,TIPOVUELO,Des-I\n", "text/csv", "header but no records", None),
        (b'2017-01-01 10:00,"x,I,KMIA\n', "text/csv", "invalid CSV", 1),
    ],
)
def test_decode_records_rejects_unreadable_bodies_with_the_reason(body, content_type, fragment, line):
    with pytest.raises(PayloadError) as info:
        decode(body, content_type)
    assert fragment in str(info.value)
    assert info.value.line == line


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded"],
)
def test_decode_records_rejects_other_media_types(content_type):
    with pytest.raises(UnsupportedMediaTypeError, match="unsupported Content-Type"):
        decode(b"{}", content_type)


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
    assert negotiate(accept).media_type == kind


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png, text/plain"])
def test_negotiate_refuses_unsupported_accept(accept):
    with pytest.raises(NotAcceptableError, match="cannot answer"):
        negotiate(accept)


def test_only_formats_that_carry_explanations_may_be_asked_for_them():
    assert [kind for kind, e in ENCODERS.items() if not e.explains] == [CSV]
    with pytest.raises(NotAcceptableError, match="explanations need Accept"):
        negotiate("text/csv", explain=True)


def answers(outputs=("probability", "decision"), **changes) -> Answers:
    fields = {
        "probabilities": [0.25, 0.75, None],
        "decisions": [False, True, None],
        "unknown": [(), ("Des-I",), ()],
        "errors": {2: InvalidRecordError(2, "TIPOVUELO", "unknown value 'X'")},
        "outputs": outputs,
        "model_version": "v1",
        "threshold": 0.5,
    }
    return Answers(**(fields | changes))


def test_json_answers_carry_predictions_unknown_fields_and_errors_in_place():
    doc = json.loads(ENCODERS[JSON].encode(answers()))
    assert doc == {
        "predictions": [
            {"probability": 0.25, "decision": False},
            {"probability": 0.75, "decision": True, "unknown": ["Des-I"]},
            {
                "error": {
                    "code": "invalid_record",
                    "message": "record 2: TIPOVUELO: unknown value 'X'",
                    "record": 2,
                    "field": "TIPOVUELO",
                }
            },
        ],
        "model_version": "v1",
        "threshold": 0.5,
    }
    lines = ENCODERS[JSONLINES].encode(answers()).decode().splitlines()
    assert [json.loads(line) for line in lines] == doc["predictions"]


def test_an_answer_without_errors_takes_the_one_comprehension_path_and_reads_the_same():
    """The usual answer (both outputs, no error, no explanation) is built without ``Answers.record``; it must
    be byte for byte what ``record`` builds."""
    clean = answers(probabilities=[0.25, 0.75], decisions=[False, True], unknown=[(), ("Des-I",)], errors={})
    by_record = [clean.record(i) for i in range(2)]
    doc = json.loads(ENCODERS[JSON].encode(clean))
    assert doc["predictions"] == by_record
    assert ENCODERS[JSONLINES].encode(clean) == b"".join(orjson.dumps(r) + b"\n" for r in by_record)


@pytest.mark.parametrize(
    "outputs, csv_text",
    [
        (
            ("probability", "decision"),
            "0.25,0,,\n0.75,1,Des-I,\n,,,invalid_record: record 2: TIPOVUELO: unknown value 'X'\n",
        ),
        (("probability",), "0.25,,\n0.75,Des-I,\n,,invalid_record: record 2: TIPOVUELO: unknown value 'X'\n"),
        (("decision",), "0,,\n1,Des-I,\n,,invalid_record: record 2: TIPOVUELO: unknown value 'X'\n"),
    ],
)
def test_csv_answers_have_one_fixed_width_line_per_slot(outputs, csv_text):
    assert ENCODERS[CSV].encode(answers(outputs)).decode() == csv_text


def test_a_csv_answer_to_a_csv_request_with_a_header_starts_with_a_header_line():
    text = ENCODERS[CSV].encode(answers(header=True)).decode()
    assert text.splitlines()[0] == "probability,decision,unknown,error" and len(text.splitlines()) == 4


def test_explanations_are_added_to_json():
    explanation = Explanation((("hour", 0.5),), (("airline", -0.25),))
    doc = json.loads(ENCODERS[JSON].encode(answers(explanations=[explanation, explanation, None])))
    assert doc["predictions"][0]["explanation"] == {
        "up": [{"feature": "hour", "contribution": 0.5}],
        "down": [{"feature": "airline", "contribution": -0.25}],
    }


def test_the_earlier_services_answer_shape():
    one = answers(probabilities=[0.14], decisions=[False], unknown=[()], errors={})
    assert json.loads(legacy_body(one, single=True)) == {
        "delay_probability": 0.14,
        "clase": ["Baja probabilidad de atraso"],
    }
    several = json.loads(legacy_body(answers(), single=False))
    assert several[1] == {
        "delay_probability": 0.75,
        "clase": ["Alta probabilidad de atraso"],
        "unknown": ["Des-I"],
    }
    assert several[2]["error"]["field"] == "TIPOVUELO"
