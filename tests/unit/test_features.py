"""Feature building: calendar boundaries, periods of day, high season, label, one path for both sides."""

import numpy as np
import pytest

from scl_delay.features import (
    AFTERNOON,
    MORNING,
    NIGHT,
    build_features,
    calendar,
    delay_label,
    fit_feature_spec,
    high_season,
    period_of_day,
)
from scl_delay.schema import InputSchema, parse_columns


def ts(*values):
    return np.array(values, dtype="datetime64[s]")


@pytest.mark.parametrize(
    "clock, period",
    [
        ("04:59", NIGHT),
        ("05:00", MORNING),
        ("11:59", MORNING),
        ("12:00", AFTERNOON),
        ("18:59", AFTERNOON),
        ("19:00", NIGHT),
        ("23:59", NIGHT),
        ("00:00", NIGHT),
    ],
)
def test_period_of_day_boundaries_are_whole_minutes(clock, period):
    hour = calendar(ts(f"2017-03-01T{clock}:00"))["hour"]
    assert period_of_day(hour)[0] == period


@pytest.mark.parametrize(
    "date, expected",
    [
        ("2017-12-14", False),
        ("2017-12-15", True),
        ("2017-12-31", True),
        ("2017-01-01", True),
        ("2017-02-28", True),
        ("2016-02-29", True),
        ("2017-03-03", True),
        ("2017-03-04", False),
        ("2017-07-14", False),
        ("2017-07-15", True),
        ("2017-07-31", True),
        ("2017-08-01", False),
        ("2017-09-10", False),
        ("2017-09-11", True),
        ("2017-09-30", True),
        ("2017-10-01", False),
    ],
)
def test_high_season_includes_whole_boundary_days(date, expected):
    for clock in ("00:00:00", "23:59:59"):
        cal = calendar(ts(f"{date}T{clock}"))
        assert bool(high_season(cal["month"], cal["day_of_month"])[0]) is expected, (date, clock)


def test_calendar_handles_leap_days_and_month_ends():
    cal = calendar(ts("2016-02-29T10:30:00", "2017-12-31T23:55:00", "2017-01-02T00:00:00"))
    assert cal["month"].tolist() == [2, 12, 1]
    assert cal["day_of_month"].tolist() == [29, 31, 2]
    assert cal["day_of_year"].tolist() == [60, 365, 2]
    assert cal["weekday"].tolist() == [0, 6, 0]  # Monday, Sunday, Monday
    assert cal["minute_of_day"].tolist() == [630, 1435, 0]


def test_label_is_strictly_more_than_fifteen_minutes():
    scheduled = ts("2017-01-01T10:00:00", "2017-01-01T10:00:00", "2017-01-01T23:50:00")
    operated = ts("2017-01-01T10:15:00", "2017-01-01T10:16:00", "2017-01-02T00:06:00")
    assert delay_label(scheduled, operated).tolist() == [0, 1, 1]


SCHEMA = InputSchema(
    ("Fecha-I", "OPERA", "TIPOVUELO", "Des-I", "MES"), (("OPERA",), ("TIPOVUELO",), ("MES", "Fecha-I"))
)


def test_challenge_features_take_month_from_fecha_i_or_mes():
    raw = {
        "Fecha-I": ["2017-07-03 10:00:00", None],
        "MES": [None, 12],
        "OPERA": ["Grupo LATAM", "Copa Air"],
        "TIPOVUELO": ["I", "N"],
        "Des-I": ["SAEZ", "SCFA"],
    }
    columns, errors = parse_columns(raw, 2, SCHEMA)
    assert errors == []
    spec = fit_feature_spec(columns, "challenge")
    X = build_features(columns, spec)
    row = dict(zip(spec.names, X[0])), dict(zip(spec.names, X[1]))
    assert row[0]["MES_7"] == 1 and row[0]["OPERA_Grupo LATAM"] == 1 and row[0]["TIPOVUELO_I"] == 1
    assert row[1]["MES_12"] == 1 and row[1]["OPERA_Copa Air"] == 1 and row[1]["TIPOVUELO_I"] == 0


def test_full_features_are_the_same_for_one_record_and_in_a_batch():
    raw = {
        "Fecha-I": ["2017-07-03 10:00:00", "2017-12-20 19:30:00"],
        "OPERA": ["Grupo LATAM", "Copa Air"],
        "TIPOVUELO": ["I", "N"],
        "Des-I": ["SAEZ", "SCFA"],
    }
    columns, _ = parse_columns(raw, 2, SCHEMA)
    spec = fit_feature_spec(columns, "full")
    batch = build_features(columns, spec)
    single, _ = parse_columns({k: v[1:] for k, v in raw.items()}, 1, spec.input_schema())
    np.testing.assert_array_equal(build_features(single, spec)[0], batch[1])
    named = dict(zip(spec.names, batch[1]))
    assert named["high_season"] == 1 and named["period_of_day"] == NIGHT and named["hour"] == 19
    assert named["airline"] == spec.vocabularies["OPERA"].index("Copa Air")
