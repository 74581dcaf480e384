"""Flight columns -> model features: the one path for training and serving.

Only what is known before departure is used: the scheduled time ``Fecha-I`` (or, for the challenge
set, the month ``MES`` of the scheduled flight), airline, flight type and scheduled destination.
``Fecha-O`` only makes the label; ``DIA``/``MES``/``AÑO``/``DIANOM`` of the data set describe the
operated date and are never read at training time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain

import numpy as np

from .schema import (
    DES_I,
    FECHA_I,
    FLIGHT_TYPES,
    MES,
    OPERA,
    SIGLADES,
    TIPOVUELO,
    YEARS,
    FlightColumns,
    InputSchema,
)

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
DAY_FEATURES = ("month", "day_of_month", "day_of_year", "weekday", "high_season")  # functions of the date
MINUTE_FEATURES = ("hour", "minute_of_day", "period_of_day")  # functions of the time of day
FLIGHT_FEATURES = ("international", "airline", "destination")
SECONDS_PER_DAY = 86_400


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
class CalendarTables:
    """``calendar``, ``period_of_day`` and ``high_season`` evaluated once for every day of ``schema.YEARS``
    and every minute of a day, laid out in a feature set's columns: two lookups instead of some forty NumPy
    calls, which for one record cost more than the model itself."""

    first_second: int  # seconds since 1970-01-01 of by_day's first row
    by_day: np.ndarray  # float32 (days, features): the date's features, 0 elsewhere
    by_minute: np.ndarray  # float32 (1440, features): the time of day's features, 0 elsewhere
    # the columns of FLIGHT_FEATURES, adjacent: a slice, since assigning to a list of columns releases the GIL
    flight_columns: slice

    def features(self, scheduled: np.ndarray) -> np.ndarray:
        """Each datetime64[s]'s day-table row plus its minute-table row (each is zero in the other's
        columns). The dates must lie within ``schema.YEARS``, as ``parse_columns`` keeps them: past the
        table's end this raises, but before its start the index would wrap around to another day."""
        day, second = np.divmod(scheduled.view(np.int64) - self.first_second, SECONDS_PER_DAY)
        X = self._day_rows[day].view(np.float32) + self._minute_rows[second // 60].view(np.float32)
        return X.reshape(len(day), self.by_day.shape[1])

    # The tables as 1-D arrays of whole rows, gathered by 1-D indexing: ``take`` and row indexing of a 2-D
    # array release the GIL on every call, however small, and a serving thread then waits for another thread
    # to give it back (up to ``sys.getswitchinterval()``, 5 ms); 1-D indexing keeps it for small gathers.
    @cached_property
    def _day_rows(self) -> np.ndarray:
        return _as_rows(self.by_day)

    @cached_property
    def _minute_rows(self) -> np.ndarray:
        return _as_rows(self.by_minute)


def _as_rows(table: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1] * table.itemsize))).reshape(-1)


def calendar_tables(names: Sequence[str]) -> CalendarTables:
    first, last = np.datetime64(f"{YEARS[0]}-01-01", "D"), np.datetime64(f"{YEARS[1]}-12-31", "D")
    days = calendar(np.arange(first, last + 1).astype("datetime64[s]"))
    days["high_season"] = high_season(days["month"], days["day_of_month"])
    minutes = calendar(np.arange(0, SECONDS_PER_DAY, 60).astype("datetime64[s]"))
    minutes["period_of_day"] = period_of_day(minutes["hour"])
    by_day = np.zeros((len(days["month"]), len(names)), dtype=np.float32)
    by_minute = np.zeros((len(minutes["hour"]), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        if name in DAY_FEATURES:
            by_day[:, j] = days[name]
        elif name in MINUTE_FEATURES:
            by_minute[:, j] = minutes[name]
    column = {name: j for j, name in enumerate(names)}
    if unknown := set(names) - set(DAY_FEATURES) - set(MINUTE_FEATURES) - set(FLIGHT_FEATURES):
        raise ValueError(f"no rule for features {sorted(unknown)}")
    first_second = int(first.astype("datetime64[s]").astype(np.int64))
    flight = column[FLIGHT_FEATURES[0]]
    if [column[name] for name in FLIGHT_FEATURES] != list(range(flight, flight + len(FLIGHT_FEATURES))):
        raise ValueError(f"features {FLIGHT_FEATURES} must be adjacent, in this order")
    return CalendarTables(first_second, by_day, by_minute, slice(flight, flight + len(FLIGHT_FEATURES)))


class VocabularyCodes(dict):
    """Vocabulary spelling -> code (a float); any other value is matched ignoring case, NaN outside the
    vocabulary (missing, as XGBoost scores it). Lookups of other values are not stored: requests must not
    grow it. Only ``[value]`` reaches ``__missing__``: ``get`` and ``in`` see the exact spellings alone."""

    def __init__(self, vocabulary: Sequence[str]):
        super().__init__((v, float(i)) for i, v in enumerate(vocabulary))
        self.folded = {v.casefold(): float(i) for i, v in enumerate(vocabulary)}

    def __missing__(self, value: str) -> float:
        return self.folded.get(value.casefold(), math.nan)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to rebuild the training features from a record: stored in the artifact."""

    feature_set: str
    names: tuple[str, ...]
    types: tuple[str, ...]  # XGBoost feature types: "q" numeric, "c" categorical (codes)
    vocabularies: Mapping[str, tuple[str, ...]]  # allowed OPERA / Des-I values, in code order
    city_airports: Mapping[str, str] = field(default_factory=dict)  # SIGLADES city -> its busiest Des-I

    def input_schema(self) -> InputSchema:
        required: tuple[tuple[str, ...], ...]
        fields: tuple[str, ...]
        if self.feature_set == "challenge":
            fields = (FECHA_I, OPERA, TIPOVUELO, DES_I, SIGLADES, MES)
            required = ((OPERA,), (TIPOVUELO,), (MES, FECHA_I))
        else:
            fields = (FECHA_I, OPERA, TIPOVUELO, DES_I, SIGLADES)
            required = ((FECHA_I,), (OPERA,), (TIPOVUELO,), (DES_I, SIGLADES))
        categories = {**self.vocabularies, TIPOVUELO: FLIGHT_TYPES}
        return InputSchema(fields, required, categories, dict(self.city_airports))

    @cached_property
    def vocabulary_codes(self) -> dict[str, VocabularyCodes]:
        """Per categorical field, value -> code (``VocabularyCodes``)."""
        return {name: VocabularyCodes(vocab) for name, vocab in self.vocabularies.items()}

    @cached_property
    def calendar_tables(self) -> CalendarTables:
        return calendar_tables(self.names)

    def codes(self, field: str, values: np.ndarray) -> np.ndarray:
        """Vocabulary codes, matched ignoring case; NaN (missing, as XGBoost scores it) outside it."""
        return np.fromiter(
            map(self.vocabulary_codes[field].__getitem__, values), dtype=np.float32, count=len(values)
        )

    def to_dict(self) -> dict:
        return {
            "feature_set": self.feature_set,
            "names": list(self.names),
            "types": list(self.types),
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
            "city_airports": dict(self.city_airports),
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> FeatureSpec:
        return cls(
            doc["feature_set"],
            tuple(doc["names"]),
            tuple(doc["types"]),
            {k: tuple(v) for k, v in doc["vocabularies"].items()},
            dict(doc.get("city_airports", {})),
        )


def vocabulary(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct values, matched ignoring case, each in its most frequent spelling; sorted, so the same data
    gives the same codes."""
    return tuple(sorted(_spellings(Counter(v for v in values if v)).values()))


def _spellings(counts: Counter) -> dict[str, str]:
    """Case-folded value -> its most frequent spelling (ties: the first in sort order, so it is stable)."""
    best: dict[str, str] = {}
    for value, n in counts.items():
        key = value.casefold()
        if key not in best or (-n, value) < (-counts[best[key]], best[key]):
            best[key] = value
    return best


def city_airports(cities: Collection[str], airports: Collection[str]) -> dict[str, str]:
    """City -> its busiest airport in these rows (Buenos Aires: SAEZ or SABE, whichever has more flights)."""
    city_names = _spellings(Counter(c for c in cities if c))
    airport_names = _spellings(Counter(a for a in airports if a))
    pairs: Counter = Counter()
    for (city, airport), n in Counter(zip(cities, airports)).items():
        if city and airport:
            pairs[city_names[city.casefold()], airport_names[airport.casefold()]] += n
    table: dict[str, tuple[int, str]] = {}
    for (city, airport), n in sorted(pairs.items()):
        if city not in table or n > table[city][0]:  # ties: the first airport in sort order
            table[city] = (n, airport)
    return {city: airport for city, (_, airport) in sorted(table.items())}


def fit_feature_spec(columns: FlightColumns, feature_set: str) -> FeatureSpec:
    """Learn the vocabularies and the city table from every usable row (all splits: a value seen only in the
    test weeks is still a known value when served)."""
    vocabularies = {OPERA: vocabulary(columns.airline)}
    cities = city_airports(columns.city, columns.destination)
    if feature_set == "challenge":
        names, types = CHALLENGE_FEATURES, ("q",) * len(CHALLENGE_FEATURES)
        return FeatureSpec(feature_set, names, types, vocabularies, cities)
    if feature_set == "full":
        vocabularies[DES_I] = vocabulary(columns.destination)
        names, types = zip(*FULL_FEATURES)
        return FeatureSpec(feature_set, names, types, vocabularies, cities)
    raise ValueError(f"unknown feature set {feature_set!r}; expected one of {FEATURE_SETS}")


def build_features(columns: FlightColumns, spec: FeatureSpec) -> np.ndarray:
    """Feature matrix (float32, one row per flight, columns in ``spec.names`` order)."""
    build = _challenge_features if spec.feature_set == "challenge" else _full_features
    return build(columns, spec)


def _challenge_features(columns: FlightColumns, spec: FeatureSpec) -> np.ndarray:
    X = np.empty((len(columns), len(spec.names)), dtype=np.float32)
    airline = spec.codes(OPERA, columns.airline)
    known = spec.vocabulary_codes[OPERA].folded
    for j, name in enumerate(spec.names):
        if name.startswith("OPERA_"):
            X[:, j] = airline == known.get(name.removeprefix("OPERA_").casefold(), -1)
        elif name.startswith("MES_"):
            X[:, j] = columns.month == int(name.removeprefix("MES_"))
        elif name == "TIPOVUELO_I":  # "I" or "N": schema.py answers the canonical case
            X[:, j] = columns.flight_type == "I"
        else:
            raise ValueError(f"no rule for feature {name!r} of the challenge set")
    return X


def _full_features(columns: FlightColumns, spec: FeatureSpec) -> np.ndarray:
    """The calendar features by lookup: one row of ``spec.calendar_tables`` per day and per minute, summed
    (each table is zero in the other's columns), then the flight's own columns, all three in one array."""
    tables = spec.calendar_tables
    # Fecha-I is required for this set and parse_columns keeps it within schema.YEARS (Santiago time), so
    # every row has a table row.
    X = tables.features(columns.scheduled)
    airlines, destinations = spec.vocabulary_codes[OPERA], spec.vocabulary_codes[DES_I]
    flight = zip(
        map("I".__eq__, columns.flight_type),
        map(airlines.__getitem__, columns.airline),
        map(destinations.__getitem__, columns.destination),
    )  # C-level loops: a Python comprehension costs more per row in 1,000-record requests
    width = len(FLIGHT_FEATURES)
    values = np.fromiter(chain.from_iterable(flight), dtype=np.float32, count=width * len(X))
    X[:, tables.flight_columns] = values.reshape(len(X), width)
    return X
