"""Flight columns -> model features: the one path for training and serving.

Only what is known before departure is used: the scheduled time ``Fecha-I`` (or, for the challenge
set, the month ``MES`` of the scheduled flight), airline, flight type and scheduled destination.
``Fecha-O`` only makes the label; ``DIA``/``MES``/``AÑO``/``DIANOM`` of the data set describe the
operated date and are never read at training time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .schema import DES_I, FECHA_I, FLIGHT_TYPES, MES, OPERA, TIPOVUELO, FlightColumns, InputSchema

DELAY_THRESHOLD = np.timedelta64(15 * 60, "s")
MORNING, AFTERNOON, NIGHT = 0, 1, 2
# The classic top-10 one-hot features of the original challenge notebook, in its order.
CHALLENGE_FEATURES = (
    "OPERA_Latin American Wings",
    "MES_7",
    "MES_10",
    "OPERA_Grupo LATAM",
    "MES_12",
    "TIPOVUELO_I",
    "MES_4",
    "MES_11",
    "OPERA_Sky Airline",
    "OPERA_Copa Air",
)
# No month or day of year: one year of history cannot teach a month the model has not seen, and on the
# time split they cost precision; the high-season flag carries the seasonality that repeats.
FULL_FEATURES = (
    ("day_of_month", "q"),
    ("weekday", "q"),
    ("hour", "q"),
    ("minute_of_day", "q"),
    ("period_of_day", "q"),
    ("high_season", "q"),
    ("international", "q"),
    ("airline", "c"),
    ("destination", "c"),
)
FEATURE_SETS = ("challenge", "full")


def delay_label(scheduled: np.ndarray, operated: np.ndarray) -> np.ndarray:
    """1 when the flight left more than 15 minutes after its scheduled time."""
    return ((operated - scheduled) > DELAY_THRESHOLD).astype(np.int8)


def period_of_day(hour: np.ndarray) -> np.ndarray:
    """Morning 05:00-11:59, afternoon 12:00-18:59, night 19:00-04:59."""
    return np.where(
        (hour >= 5) & (hour < 12), MORNING, np.where((hour >= 12) & (hour < 19), AFTERNOON, NIGHT)
    )


def high_season(month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Dec 15-Mar 3, Jul 15-31 and Sep 11-30, whole days inclusive."""
    return (
        ((month == 12) & (day >= 15))
        | (month == 1)
        | (month == 2)
        | ((month == 3) & (day <= 3))
        | ((month == 7) & (day >= 15))
        | ((month == 9) & (day >= 11))
    )


def calendar(scheduled: np.ndarray) -> dict[str, np.ndarray]:
    """Calendar parts of datetime64[s] values, vectorized (no per-row strptime)."""
    days = scheduled.astype("datetime64[D]")
    months = scheduled.astype("datetime64[M]")
    years = scheduled.astype("datetime64[Y]")
    minute_of_day = (scheduled - days).astype("timedelta64[m]").astype(np.int64)
    month = months.astype(np.int64) % 12 + 1
    day = (days - months).astype(np.int64) + 1
    return {
        "month": month,
        "day_of_month": day,
        "day_of_year": (days - years).astype(np.int64) + 1,
        "weekday": (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday; Monday is 0
        "hour": minute_of_day // 60,
        "minute_of_day": minute_of_day,
    }


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to rebuild the training features from a record: stored in the artifact."""

    feature_set: str
    names: tuple[str, ...]
    types: tuple[str, ...]  # XGBoost feature types: "q" numeric, "c" categorical (codes)
    vocabularies: Mapping[str, tuple[str, ...]]  # allowed OPERA / Des-I values, in code order

    def input_schema(self) -> InputSchema:
        required: tuple[tuple[str, ...], ...]
        if self.feature_set == "challenge":
            fields, required = (OPERA, TIPOVUELO, MES, FECHA_I), ((OPERA,), (TIPOVUELO,), (MES, FECHA_I))
        else:
            fields, required = (
                (FECHA_I, OPERA, TIPOVUELO, DES_I),
                ((FECHA_I,), (OPERA,), (TIPOVUELO,), (DES_I,)),
            )
        return InputSchema(fields, required, {**self.vocabularies, TIPOVUELO: FLIGHT_TYPES})

    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        return {name: {v: i for i, v in enumerate(vocab)} for name, vocab in self.vocabularies.items()}

    def codes(self, field: str, values: np.ndarray) -> np.ndarray:
        lookup = self._codes[field]
        return np.fromiter((lookup.get(v, np.nan) for v in values), dtype=np.float32, count=len(values))

    def to_dict(self) -> dict:
        return {
            "feature_set": self.feature_set,
            "names": list(self.names),
            "types": list(self.types),
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> FeatureSpec:
        return cls(
            doc["feature_set"],
            tuple(doc["names"]),
            tuple(doc["types"]),
            {k: tuple(v) for k, v in doc["vocabularies"].items()},
        )


def fit_feature_spec(columns: FlightColumns, feature_set: str) -> FeatureSpec:
    """Learn the vocabularies from training columns (sorted, so the same data gives the same codes)."""
    vocabularies = {OPERA: tuple(sorted(set(columns.airline)))}
    if feature_set == "challenge":
        return FeatureSpec(feature_set, CHALLENGE_FEATURES, ("q",) * len(CHALLENGE_FEATURES), vocabularies)
    if feature_set == "full":
        vocabularies[DES_I] = tuple(sorted(set(columns.destination)))
        names, types = zip(*FULL_FEATURES)
        return FeatureSpec(feature_set, names, types, vocabularies)
    raise ValueError(f"unknown feature set {feature_set!r}; expected one of {FEATURE_SETS}")


def build_features(columns: FlightColumns, spec: FeatureSpec) -> np.ndarray:
    """Feature matrix (float32, one row per flight, columns in ``spec.names`` order)."""
    build = _challenge_features if spec.feature_set == "challenge" else _full_features
    parts = build(columns, spec)
    return np.column_stack([np.asarray(parts[name], dtype=np.float32) for name in spec.names])


def _challenge_features(columns: FlightColumns, spec: FeatureSpec) -> dict[str, np.ndarray]:
    parts = {
        name: columns.airline == name.removeprefix("OPERA_")
        for name in spec.names
        if name.startswith("OPERA_")
    }
    parts.update(
        {
            name: columns.month == int(name.removeprefix("MES_"))
            for name in spec.names
            if name.startswith("MES_")
        }
    )
    parts["TIPOVUELO_I"] = columns.flight_type == "I"
    return parts


def _full_features(columns: FlightColumns, spec: FeatureSpec) -> dict[str, np.ndarray]:
    parts = calendar(columns.scheduled)
    parts["period_of_day"] = period_of_day(parts["hour"])
    parts["high_season"] = high_season(parts["month"], parts["day_of_month"])
    parts["international"] = columns.flight_type == "I"
    parts["airline"] = spec.codes(OPERA, columns.airline)
    parts["destination"] = spec.codes(DES_I, columns.destination)
    return parts
