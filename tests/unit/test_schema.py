"""Record validation names the record and the field; nothing is accepted silently; matching is the same
for every source (trimmed, case-insensitive, canonical answer); unknown values are flagged, not refused."""

import dataclasses

import numpy as np
import pytest

from scl_delay.schema import RAW_COLUMNS, FlightColumns, InputSchema, parse_columns, parse_timestamps

SCHEMA = InputSchema(
    ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I", "SIGLADES"),
    (("Fecha-I",), ("OPERA",), ("TIPOVUELO",), ("Des-I", "SIGLADES")),
    {"OPERA": ("Grupo LATAM", "Sky Airline"), "Des-I": ("SAEZ", "SCFA", "SABE")},
    {"Buenos Aires": "SAEZ", "Antofagasta": "SCFA"},
)
GOOD = {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "SAEZ"}


def parse(*records, schema=SCHEMA, unknown="score"):
    names = {k for r in records for k in r}
    raw = {f: [r.get(f) for r in records] for f in names}
    return parse_columns(raw, len(records), schema, unknown)


@pytest.mark.parametrize(
    "change, field, reason",
    [
        ({"TIPOVUELO": "X"}, "TIPOVUELO", "expected one of 'I', 'N'"),
        ({"Fecha-I": "2017-02-30 10:00:00"}, "Fecha-I", "not a calendar date-time"),
        ({"Fecha-I": "yesterday"}, "Fecha-I", "expected a date-time"),
        ({"Fecha-I": 1483228800}, "Fecha-I", "expected a date-time"),
        ({"Fecha-I": "0001-07-14 10:00"}, "Fecha-I", "year 0001 is outside"),
        ({"Fecha-I": "2017-07-14 24:00"}, "Fecha-I", "expected a date-time"),
        ({"Fecha-I": None}, "Fecha-I", "missing required field"),
        ({"OPERA": ""}, "OPERA", "missing required field"),
        ({"Des-I": 7}, "Des-I", "expected text"),
        ({"TIPOVUELO": "N"}, "TIPOVUELO", "contradicts Des-I 'SAEZ'"),
    ],
)
def test_invalid_values_name_record_and_field(change, field, reason):
    columns, errors = parse(GOOD, {**GOOD, **change})
    assert [(e.index, e.field) for e in errors] == [(1, field)]
    assert reason in errors[0].reason
    assert columns.valid.tolist() == [True, False]


def test_an_unknown_value_is_scored_as_missing_and_flagged_by_default():
    columns, errors = parse(GOOD, {**GOOD, "OPERA": "XX Air", "Des-I": "YMML"})
    assert errors == [] and columns.valid.tolist() == [True, True]
    assert columns.unknown.tolist() == [(), ("OPERA", "Des-I")]
    assert (columns.airline[1], columns.destination[1]) == ("XX Air", "YMML")


def test_unknown_reject_makes_an_unknown_value_an_error():
    _, errors = parse(GOOD, {**GOOD, "OPERA": "XX"}, unknown="reject")
    assert [(e.index, e.field) for e in errors] == [(1, "OPERA")]
    assert "unknown value 'XX'" in errors[0].reason


def test_categories_are_matched_trimmed_and_ignoring_case_and_answered_canonically():
    columns, errors = parse({**GOOD, "OPERA": " grupo latam ", "TIPOVUELO": "i", "Des-I": "saez"})
    assert errors == []
    assert (columns.airline[0], columns.flight_type[0], columns.destination[0]) == (
        "Grupo LATAM",
        "I",
        "SAEZ",
    )
    assert columns.unknown.tolist() == [()]


@pytest.mark.parametrize(
    "text, local",
    [
        ("2017-07-14T19:30:00.000Z", "2017-07-14T15:30:00"),  # Chile in July: UTC-4
        ("2017-01-14T19:30:00Z", "2017-01-14T16:30:00"),  # January: summer time, UTC-3
        ("2017-07-14T19:30+02:00", "2017-07-14T13:30:00"),
        ("2017-07-14 19:30:59.999", "2017-07-14T19:30:59"),
        ("2017-07-14T19:30", "2017-07-14T19:30:00"),
        ("2017-07-14 19:30:00", "2017-07-14T19:30:00"),
    ],
)
def test_timestamps_take_iso_forms_and_convert_offsets_to_santiago_time(text, local):
    parsed, errors = parse_timestamps([text], "Fecha-I")
    assert errors == [] and parsed[0] == np.datetime64(local)


def test_timestamps_reject_nat_text_and_impossible_dates():
    _, errors = parse_timestamps(["2017-01-01 23:30", "NaT", "2017-02-29 10:00", "3017-01-01 10:00"], "F")
    assert sorted(e.index for e in errors) == [1, 2, 3]


PLAIN = ["2017-01-01 23:30:00", "2017-01-02T06:05", "1950-01-01 00:00", "2100-12-31 23:59:59"]


@pytest.mark.parametrize(
    "odd, index",
    [
        ("1949-12-31 23:59", 4),  # a year out of range
        ("2017-02-29 10:00", 4),  # an impossible date
        ("2017-01-01 10:00\n2017-01-01 11:00", 4),  # two plain times in one value
        (None, None),  # missing
        (" 2017-01-01 10:00", None),  # to be trimmed: the checked path's result
        (1.5, 4),  # not text
    ],
)
def test_a_batch_of_plain_times_is_read_at_once_and_any_odd_value_one_by_one(odd, index):
    """The whole-column path (one regular expression over the joined values) gives what the value-by-value
    path gives: the plain times alone, and with one odd value among them."""
    parsed, errors = parse_timestamps(PLAIN, "Fecha-I")
    assert errors == [] and parsed.tolist() == [np.datetime64(t.replace(" ", "T"), "s").item() for t in PLAIN]
    parsed, errors = parse_timestamps(PLAIN + [odd], "Fecha-I", missing := [])
    assert [e.index for e in errors] == ([] if index is None else [index])
    assert parsed[:4].tolist() == [np.datetime64(t.replace(" ", "T"), "s").item() for t in PLAIN]
    assert missing == ([4] if odd is None else [])


def test_a_batch_of_vocabulary_spellings_is_matched_at_once_and_any_other_value_one_by_one():
    good = [GOOD] * 3
    columns, errors = parse(*good)
    assert errors == [] and columns.airline.tolist() == ["Grupo LATAM"] * 3
    columns, errors = parse(*good, {**GOOD, "OPERA": ["Grupo LATAM"]}, {**GOOD, "OPERA": "sky airline "})
    assert [(e.index, e.field) for e in errors] == [(3, "OPERA")]
    assert columns.airline.tolist()[4] == "Sky Airline"


def test_an_offset_that_moves_the_year_out_of_range_is_refused():
    parsed, errors = parse_timestamps(["1950-01-01T02:00:00Z", "2100-12-31T23:30-06:00"], "Fecha-I")
    assert [e.reason for e in errors] == [
        "year 1949 (Santiago time) is outside 1950-2100",
        "year 2101 (Santiago time) is outside 1950-2100",
    ]
    assert np.isnat(parsed).all()


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


def test_the_earlier_services_record_is_read_through_aliases_and_derivations():
    """FECHA_PROGRAMADA is Fecha-I; the city gives the airport (the busier one), the airport the flight
    type."""
    legacy = {"OPERA": "Sky Airline", "SIGLADES": "buenos aires", "FECHA_PROGRAMADA": "2017-11-27 13:00:00"}
    domestic = {**legacy, "SIGLADES": "Antofagasta"}
    columns, errors = parse(legacy, domestic)
    assert errors == []
    assert columns.destination.tolist() == ["SAEZ", "SCFA"]
    assert columns.flight_type.tolist() == ["I", "N"]
    assert columns.scheduled[0] == np.datetime64("2017-11-27T13:00:00")


def test_a_bad_alias_value_is_named_by_the_field_the_record_used():
    _, errors = parse({"OPERA": "Sky Airline", "SIGLADES": "Antofagasta", "FECHA_PROGRAMADA": "mañana"})
    assert [(e.field, str(e).split(":")[1].strip()) for e in errors] == [
        ("FECHA_PROGRAMADA", "FECHA_PROGRAMADA")
    ]


def test_an_unknown_city_without_flight_type_is_flagged_and_asks_for_tipovuelo():
    columns, errors = parse({"OPERA": "Sky Airline", "SIGLADES": "Atlantis", "Fecha-I": "2017-11-27 13:00"})
    assert [(e.field, e.reason) for e in errors] == [("TIPOVUELO", "missing required field")]
    assert columns.unknown.tolist() == [("SIGLADES",)]


def test_every_raw_column_fills_its_own_field_of_flight_columns():
    fields = {f.name for f in dataclasses.fields(FlightColumns)}
    attributes = [c.attribute for c in RAW_COLUMNS]
    assert len(set(attributes)) == len(attributes)
    assert set(attributes) - {"scheduled", "given_month"} <= fields


@pytest.mark.parametrize("value", [[], {}, ["Grupo LATAM"], {"a": 1}, 1.5, True])
def test_a_category_that_is_not_text_is_an_error_whatever_its_type(value):
    _, errors = parse({**GOOD, "OPERA": value})
    assert [(e.index, e.field) for e in errors] == [(0, "OPERA")] and "expected text" in errors[0].reason
