"""Record validation names the record and the field; nothing is accepted silently."""

import numpy as np
import pytest

from scl_delay.schema import InputSchema, parse_columns, parse_timestamps

SCHEMA = InputSchema(
    ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I"),
    (("Fecha-I",), ("OPERA",), ("TIPOVUELO",), ("Des-I",)),
    {"OPERA": ("Grupo LATAM", "Sky Airline"), "Des-I": ("SAEZ", "SCFA")},
)
GOOD = {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "SAEZ"}


def parse(*records, schema=SCHEMA):
    raw = {f: [r.get(f) for r in records] for f in schema.fields}
    return parse_columns(raw, len(records), schema)


@pytest.mark.parametrize(
    "change, field, reason",
    [
        ({"OPERA": "XX"}, "OPERA", "unknown value 'XX'"),
        ({"TIPOVUELO": "X"}, "TIPOVUELO", "expected one of 'I', 'N'"),
        ({"Fecha-I": "2017-02-30 10:00:00"}, "Fecha-I", "not a calendar date-time"),
        ({"Fecha-I": "yesterday"}, "Fecha-I", "expected a date-time"),
        ({"Fecha-I": 1483228800}, "Fecha-I", "expected a date-time"),
        ({"Fecha-I": None}, "Fecha-I", "missing required field"),
        ({"OPERA": ""}, "OPERA", "missing required field"),
        ({"Des-I": 7}, "Des-I", "expected text"),
    ],
)
def test_invalid_values_name_record_and_field(change, field, reason):
    columns, errors = parse(GOOD, {**GOOD, **change})
    assert [(e.index, e.field) for e in errors] == [(1, field)]
    assert reason in errors[0].reason
    assert columns.valid.tolist() == [True, False]


def test_month_comes_from_mes_when_fecha_i_is_absent():
    schema = InputSchema(
        ("OPERA", "TIPOVUELO", "MES", "Fecha-I"), (("OPERA",), ("TIPOVUELO",), ("MES", "Fecha-I"))
    )
    records = [
        {"OPERA": "A", "TIPOVUELO": "N", "MES": m}
        for m in (7, "12", 13, "x", "+-5", "\u00b2", "\u0663", None)
    ]
    columns, errors = parse(*records, schema=schema)
    assert columns.month[:2].tolist() == [7, 12]
    assert [(e.index, e.field) for e in errors] == [(i, "MES") for i in range(2, 8)]
    assert "give MES or Fecha-I" in errors[-1].reason


def test_timestamps_accept_iso_t_and_minutes_and_reject_nat_text():
    parsed, errors = parse_timestamps(["2017-01-01T23:30:00", "2017-01-01 23:30", "NaT"], "Fecha-I")
    assert parsed[:2].tolist() == [np.datetime64("2017-01-01T23:30:00").item()] * 2
    assert [e.index for e in errors] == [2]
