"""SCL column names and the validation of flight records, shared by training and serving.

Values arrive as columns (one sequence of raw values per field): from a CSV file at training time,
from request records at serving time. ``parse_columns`` checks every value and returns the parsed
columns plus one ``InvalidRecordError`` per bad value, so `train` can report row numbers and the server
can name the record and field.

Every raw input column is one row of ``RAW_COLUMNS`` (its SCL name, the ``FlightColumns`` attribute it
fills, its kind and the names it also goes by) plus that attribute: nothing else hand-wires a column.

Matching is the same everywhere: text values are trimmed, categories are matched case-insensitively and
answered with their canonical spelling (the vocabulary's). A category outside the vocabulary is kept as
given, scored as training scores it (as missing) and listed in ``FlightColumns.unknown``; with
``unknown="reject"`` it is an error instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from zoneinfo import ZoneInfo

import numpy as np

from .errors import InvalidRecordError

FECHA_I = "Fecha-I"
VLO_I = "Vlo-I"
ORI_I = "Ori-I"
DES_I = "Des-I"
EMP_I = "Emp-I"
FECHA_O = "Fecha-O"
VLO_O = "Vlo-O"
ORI_O = "Ori-O"
DES_O = "Des-O"
EMP_O = "Emp-O"
DIA = "DIA"
MES = "MES"
ANO = "AÑO"
DIANOM = "DIANOM"
TIPOVUELO = "TIPOVUELO"
OPERA = "OPERA"
SIGLAORI = "SIGLAORI"
SIGLADES = "SIGLADES"
# The earlier delay service's name for the scheduled departure (issue 16); it sent cities as SIGLADES.
FECHA_PROGRAMADA = "FECHA_PROGRAMADA"

SCL_COLUMNS = (
    FECHA_I,
    VLO_I,
    ORI_I,
    DES_I,
    EMP_I,
    FECHA_O,
    VLO_O,
    ORI_O,
    DES_O,
    EMP_O,
    DIA,
    MES,
    ANO,
    DIANOM,
    TIPOVUELO,
    OPERA,
    SIGLAORI,
    SIGLADES,
)
# Header-less CSV, for every feature set: these four columns, or the 18 of SCL_COLUMNS (told by width).
HEADERLESS_FIELDS = (FECHA_I, OPERA, TIPOVUELO, DES_I)
TEXT_COLUMNS = (VLO_I, VLO_O)  # flight numbers: mostly digits, sometimes not; always read as text
FLIGHT_TYPES = ("I", "N")
DOMESTIC_PREFIX = "SC"  # in the SCL data TIPOVUELO is N exactly when Des-I starts with SC (no exception)
SANTIAGO = "America/Santiago"  # Fecha-I is Santiago local time; timestamps with an offset are converted
YEARS = (1950, 2100)  # a scheduled departure outside these years is a typo, not a flight
TIMESTAMP_FORMAT = "YYYY-MM-DD HH:MM[:SS[.fff]] (or ISO 8601 with T, and Z or an offset)"
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T]([01]\d|2[0-3]):([0-5]\d)(:[0-5]\d(\.\d{1,9})?)?"
    r"(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?",
    re.ASCII,
)
_PLAIN = r"\d{4}-\d{2}-\d{2}[ T](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
_PLAIN_TIMESTAMP = re.compile(_PLAIN, re.ASCII)
# a column of them joined by newlines; possessive: a column that fails, fails without backtracking
_PLAIN_LINES = re.compile(rf"(?:{_PLAIN}\n)*+{_PLAIN}", re.ASCII)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
SHOWN_CHARS = 80  # an error message echoes at most this much of a bad value
_MISSING = "missing required field"
UNKNOWN_POLICIES = ("score", "reject")


@dataclass(frozen=True)
class RawColumn:
    """One raw input column: its SCL name, the ``FlightColumns`` attribute it fills, how it is parsed."""

    name: str
    attribute: str
    kind: str  # "timestamp", "month" or "category"
    aliases: tuple[str, ...] = ()  # other names a record may use for it (checked when the name is absent)


RAW_COLUMNS = (
    RawColumn(FECHA_I, "scheduled", "timestamp", (FECHA_PROGRAMADA,)),
    RawColumn(MES, "given_month", "month"),
    RawColumn(OPERA, "airline", "category"),
    RawColumn(TIPOVUELO, "flight_type", "category"),
    RawColumn(DES_I, "destination", "category"),
    RawColumn(SIGLADES, "city", "category"),
)
RAW_BY_NAME = {c.name: c for c in RAW_COLUMNS}


@dataclass(frozen=True)
class InputSchema:
    """What a model needs from each record.

    ``fields`` are the columns read from a request (header-less CSV uses ``HEADERLESS_FIELDS``). Each group
    in ``required`` needs at least one of its fields. ``categories`` lists the allowed values of
    categorical fields; ``city_airports`` maps a destination city (``SIGLADES``) to its airport code.
    """

    fields: tuple[str, ...]
    required: tuple[tuple[str, ...], ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    city_airports: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "fields": list(self.fields),
            "required": [list(g) for g in self.required],
            "categories": {k: list(v) for k, v in self.categories.items()},
            "city_airports": dict(self.city_airports),
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> InputSchema:
        return cls(
            tuple(doc["fields"]),
            tuple(tuple(g) for g in doc["required"]),
            {k: tuple(v) for k, v in doc["categories"].items()},
            dict(doc.get("city_airports", {})),
        )

    @cached_property
    def lookups(self) -> dict[str, dict[str, str]]:
        """Per categorical field: case-folded value -> canonical spelling (built once per schema)."""
        categories = {TIPOVUELO: FLIGHT_TYPES, **self.categories}
        if self.city_airports:
            categories.setdefault(SIGLADES, tuple(self.city_airports))
        return {name: canonical_lookup(values) for name, values in categories.items()}

    @cached_property
    def read_fields(self) -> tuple[str, ...]:
        """Every name a record may carry a needed value under (fields, then their aliases)."""
        names = list(self.fields)
        for name in self.fields:
            raw = RAW_BY_NAME.get(name)
            names += [a for a in (raw.aliases if raw else ()) if a not in names]
        return tuple(names)


@dataclass  # not frozen: a frozen dataclass's __init__ costs 3x as much, and this one runs on every request
class FlightColumns:
    """Parsed, validated columns. Rows that failed validation hold placeholders; see ``valid``."""

    scheduled: np.ndarray  # datetime64[s], Santiago local time; NaT where not given
    given_month: np.ndarray  # int8, MES as given (0 where not); see ``month``
    airline: np.ndarray  # object (str), canonical spelling
    flight_type: np.ndarray  # object (str), "I" or "N"
    destination: np.ndarray  # object (str) airport code; "" where not given
    city: np.ndarray  # object (str) destination city (SIGLADES); "" where not given
    valid: np.ndarray  # bool
    unknown: np.ndarray  # object: per row, a tuple of the fields whose value is outside the vocabulary

    def __len__(self) -> int:
        return len(self.valid)

    @cached_property
    def month(self) -> np.ndarray:
        """int8, 1..12: from Fecha-I when given, else MES (computed when a feature set asks for it)."""
        from_date = self.scheduled.astype("datetime64[M]").astype(int) % 12 + 1
        return np.where(np.isnat(self.scheduled), self.given_month, from_date).astype(np.int8)

    def subset(self, mask: np.ndarray) -> FlightColumns:
        return FlightColumns(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    @classmethod
    def concatenate(cls, parts: Sequence[FlightColumns]) -> FlightColumns:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def shown(value) -> str:
    """``repr(value)``, cut to ``SHOWN_CHARS``: an error must not echo a megabyte back."""
    try:
        text = repr(value)
    except RecursionError:  # a list nested ~1,000 deep: JSON decoders read it, repr cannot show it
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def is_missing(value) -> bool:
    if value.__class__ is str:  # the usual case first: this runs for every value of every request
        return not value.strip()
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


@cache
def _santiago() -> ZoneInfo:
    return ZoneInfo(SANTIAGO)


def parse_timestamps(
    values: Sequence, field_name: str, missing: list[int] | None = None
) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """ISO 8601 date-times -> datetime64[s] in Santiago local time; missing values become NaT (their rows
    appended to ``missing`` when given).

    ``YYYY-MM-DD HH:MM``, with ``T`` or a space, seconds and fractions optional. A ``Z`` or ``+hh:mm``
    suffix is converted to Santiago local time (what ``Fecha-I`` is); without one the value is taken as
    Santiago local time already. Fractions of a second are dropped.
    """
    low, high = str(YEARS[0]), str(YEARS[1])
    if (plain := _plain_column(values, low, high)) is not None:
        return plain, []
    texts, errors = ["NaT"] * len(values), []  # one NumPy conversion for them all at the end
    for i, value in enumerate(values):
        if value.__class__ is str and _PLAIN_TIMESTAMP.fullmatch(value) and low <= value[:4] <= high:
            texts[i] = value  # the usual case first: Santiago time, no fraction, no offset, no spaces
            continue
        if is_missing(value):
            if missing is not None:
                missing.append(i)
            continue
        match = _TIMESTAMP.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            errors.append(
                InvalidRecordError(
                    i, field_name, f"expected a date-time {TIMESTAMP_FORMAT}, got {shown(value)}"
                )
            )
        elif not YEARS[0] <= int(match[1]) <= YEARS[1]:
            errors.append(
                InvalidRecordError(i, field_name, f"year {match[1]} is outside {YEARS[0]}-{YEARS[1]}")
            )
        elif match[8]:  # an offset: convert to Santiago local time (which may cross a year boundary)
            try:
                local = datetime.fromisoformat(match[0]).astimezone(_santiago())
            except ValueError:
                errors.append(InvalidRecordError(i, field_name, f"not a calendar date-time: {shown(value)}"))
                continue
            if not YEARS[0] <= local.year <= YEARS[1]:
                reason = f"year {local.year} (Santiago time) is outside {YEARS[0]}-{YEARS[1]}"
                errors.append(InvalidRecordError(i, field_name, reason))
            else:
                texts[i] = local.strftime("%Y-%m-%dT%H:%M:%S")
        else:
            texts[i] = match[0][:19] if match[7] else match[0]
    try:
        return np.array(texts, dtype="datetime64[s]"), errors
    except ValueError:  # an impossible calendar date (2017-02-30) somewhere: find which, one by one
        out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
        for i, text in enumerate(texts):
            try:
                out[i] = np.datetime64(text, "s")
            except ValueError:
                errors.append(InvalidRecordError(i, field_name, f"not a calendar date-time: {shown(text)}"))
        return out, errors


def _plain_column(values: Sequence, low: str, high: str) -> np.ndarray | None:
    """The column as datetime64[s] when every value is a plain Santiago time of a year within ``low`` and
    ``high`` (the usual batch), by one regular expression over them all; None when any is not."""
    try:
        text = "\n".join(values)
    except TypeError:  # a value that is not text
        return None
    if text.count("\n") != len(values) - 1 or not _PLAIN_LINES.fullmatch(text):  # no newline inside one
        return None
    if min(values)[:4] < low or max(values)[:4] > high:
        return None
    try:
        return np.array(values, dtype="datetime64[s]")
    except ValueError:  # an impossible date (2017-02-30): found one by one
        return None


def parse_months(
    values: Sequence, field_name: str = MES, missing: list[int] | None = None
) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """``MES``: a whole number 1..12 (or its text, as in CSV); 0 where missing (rows appended to
    ``missing``)."""
    out = np.zeros(len(values), dtype=np.int8)
    errors = []
    for i, value in enumerate(values):
        if is_missing(value):
            if missing is not None:
                missing.append(i)
            continue
        month = _whole_number(value)
        if month is None or not 1 <= month <= 12:
            errors.append(
                InvalidRecordError(i, field_name, f"expected a month number 1-12, got {shown(value)}")
            )
        else:
            out[i] = month
    return out, errors


def _whole_number(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def canonical_lookup(vocabulary: Sequence[str]) -> dict[str, str]:
    """Case-folded value -> the vocabulary's own spelling; the spellings map to themselves too, so the usual
    value (sent as the vocabulary spells it) is found without trimming or case-folding it."""
    return {**{v.strip().casefold(): v for v in vocabulary}, **{v: v for v in vocabulary}}


def parse_categories(
    values: Sequence,
    field_name: str,
    allowed: Sequence[str] | None,
    unknown: list[tuple[int, str]] | None = None,
    lookup: Mapping[str, str] | None = None,
    missing: list[int] | None = None,
) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """Trimmed text values, answered in ``allowed``'s spelling when they match it ignoring case.

    A value outside ``allowed`` is kept (trimmed) and its row appended to ``unknown`` when that list is
    given; otherwise it is an error. Missing values become "" (rows appended to ``missing`` when given).
    ``lookup``: ``canonical_lookup(allowed)``, when the caller keeps one.
    """
    if lookup is None and allowed is not None:
        lookup = canonical_lookup(allowed)
    table: Mapping[str, str] = lookup if lookup is not None else {}
    out = _as_spelled(values, table)
    errors = []
    for i in _positions(out, None):  # the values not spelled as the vocabulary spells them
        value, out[i] = values[i], ""
        if is_missing(value):
            if missing is not None:
                missing.append(i)
            continue
        if not isinstance(value, str):
            errors.append(
                InvalidRecordError(i, field_name, f"expected text, got {type(value).__name__} {shown(value)}")
            )
            continue
        text = value.strip()
        if lookup is None:
            out[i] = text
        elif (found := lookup.get(text.casefold())) is not None:
            out[i] = found
        elif unknown is not None:
            out[i] = text
            unknown.append((i, field_name))
        else:
            listed = allowed or tuple(dict.fromkeys(lookup.values()))
            errors.append(InvalidRecordError(i, field_name, _unknown(field_name, value, listed)))
    return np.array(out, dtype=object), errors


def _as_spelled(values: Sequence, table: Mapping[str, str]) -> list[str | None]:
    """Each value's vocabulary spelling where it is one of ``table``'s keys as given (the usual value), else
    None: one C-level pass (a list, made an array once: NumPy's per-item assignment costs more)."""
    try:
        return list(map(table.get, values))
    except TypeError:  # an unhashable value (a JSON list or object)
        return [table.get(v) if v.__class__ is str else None for v in values]


def _positions(found: list, value) -> Iterator[int]:
    """Where ``found`` holds ``value``, found by C-level search; ``found`` may be changed at the position
    yielded."""
    if value not in found:  # the usual list: no search, and no ValueError raised to end it
        return
    i = -1
    while True:
        try:
            i = found.index(value, i + 1)
        except ValueError:
            return
        yield i


def _unknown(field_name: str, value: str, allowed: Sequence[str]) -> str:
    listed = ", ".join(repr(a) for a in list(allowed)[:30])
    more = f" and {len(allowed) - 30} more" if len(allowed) > 30 else ""
    return f"unknown value {shown(value)}; expected one of {listed}{more}"


def _raw_values(
    raw: Mapping[str, Sequence], column: RawColumn, n_rows: int
) -> tuple[Sequence, dict[int, str]]:
    """The column's values, each taken from its name or, where that is missing, from an alias; with the rows
    whose value came from an alias (for error messages)."""
    values = raw.get(column.name)
    if not column.aliases:
        return ([None] * n_rows if values is None else values), {}
    from_alias: dict[int, str] = {}
    for alias in column.aliases:
        others = raw.get(alias)
        if others is None or all(v is None for v in others):
            continue
        if values is None:
            values = [None] * n_rows
        values = list(values)
        for i, value in enumerate(values):
            if is_missing(value) and not is_missing(others[i]):
                values[i], from_alias[i] = others[i], alias
    return ([None] * n_rows if values is None else values), from_alias


def parse_columns(
    raw: Mapping[str, Sequence], n_rows: int, schema: InputSchema, unknown: str = "score"
) -> tuple[FlightColumns, list[InvalidRecordError]]:
    """Validate raw columns against ``schema``; absent fields count as missing in every row.

    Derived where absent: ``Des-I`` from ``SIGLADES`` (the schema's city table), ``TIPOVUELO`` from
    ``Des-I``; a ``TIPOVUELO`` contradicting ``Des-I`` is an error naming both.
    """
    lookups = schema.lookups
    unknown_cells: list[tuple[int, str]] | None = [] if unknown == "score" else None
    parsed: dict[str, np.ndarray] = {}
    missing: dict[str, list[int]] = {}  # field -> rows that gave it no value
    errors: list[InvalidRecordError] = []
    for column in RAW_COLUMNS:
        if column.name not in schema.fields:
            parsed[column.attribute] = _empty(column.kind, n_rows)
            continue
        values, from_alias = _raw_values(raw, column, n_rows)
        rows = missing[column.name] = []
        if column.kind == "timestamp":
            out, found = parse_timestamps(values, column.name, rows)
        elif column.kind == "month":
            out, found = parse_months(values, column.name, rows)
        else:  # TIPOVUELO's two values are never "unknown": another value is an error
            cells = None if column.name == TIPOVUELO else unknown_cells
            lookup = lookups.get(column.name)
            out, found = parse_categories(values, column.name, None, cells, lookup, rows)
        for e in found:  # name the field the record used (FECHA_PROGRAMADA for the earlier service)
            if e.index in from_alias:
                e.field = from_alias[e.index]
                e.args = (f"record {e.index}: {e.field}: {e.reason}",)
        parsed[column.attribute], errors = out, errors + found
    errors += _derive(parsed, schema)
    errors += _missing_required(raw, n_rows, parsed, missing, schema, {e.index for e in errors})
    errors.sort(key=lambda e: e.index)
    if errors:
        valid = _new_filled(n_rows, bool, True)
        valid[[e.index for e in errors]] = False
    else:
        valid = _filled(n_rows, bool, True)
    if unknown_cells:
        flagged = _new_filled(n_rows, object, ())
        for i, name in unknown_cells:
            flagged[i] = (*flagged[i], name)
    else:
        flagged = _filled(n_rows, object, ())
    return FlightColumns(valid=valid, unknown=flagged, **parsed), errors


SHARED_FILLED_ROWS = 64  # _filled shares arrays up to this many rows, at most a few kB each


def _filled(n_rows: int, dtype: type, value) -> np.ndarray:
    """``n_rows`` times ``value``, never to be written to: shared and read-only for small requests, whose
    all-valid flags, empty unknown lists and unread months then cost no NumPy call (each costs a few µs in a
    busy server); larger ones get their own (a cache keyed by row count would keep batch-sized arrays)."""
    return (
        _shared_filled(n_rows, dtype, value)
        if n_rows <= SHARED_FILLED_ROWS
        else _new_filled(n_rows, dtype, value)
    )


@cache
def _shared_filled(n_rows: int, dtype: type, value) -> np.ndarray:
    out = _new_filled(n_rows, dtype, value)
    out.flags.writeable = False
    return out


def _new_filled(n_rows: int, dtype: type, value) -> np.ndarray:
    out: np.ndarray = np.empty(n_rows, dtype=dtype)
    out.fill(value)  # np.full would read the unknown lists' empty tuple as an empty array, and fail
    return out


def _empty(kind: str, n_rows: int) -> np.ndarray:
    if kind == "timestamp":
        return np.full(n_rows, np.datetime64("NaT"), dtype="datetime64[s]")
    if kind == "month":
        return _filled(n_rows, np.int8, 0)  # never written to, unlike the categories (_derive fills them in)
    return np.full(n_rows, "", dtype=object)


def flight_type_of(destination: str) -> str:
    return "N" if destination.upper().startswith(DOMESTIC_PREFIX) else "I"


def _derive(parsed: dict[str, np.ndarray], schema: InputSchema) -> list[InvalidRecordError]:
    destination, city, flight_type = parsed["destination"], parsed["city"], parsed["flight_type"]
    if DES_I not in schema.fields and SIGLADES not in schema.fields:
        return []
    airports = destination.tolist()
    if cities := schema.city_airports:
        for i in _positions(airports, ""):
            if city[i]:
                destination[i] = airports[i] = cities.get(city[i], "")
    types = {airport: flight_type_of(airport) if airport else "" for airport in set(airports)}
    derived, given = list(map(types.__getitem__, airports)), flight_type.tolist()
    if given == derived:  # the usual request: every TIPOVUELO given, and right
        return []
    errors: list[InvalidRecordError] = []
    for i, (stated, implied) in enumerate(zip(given, derived)):
        if stated == implied or not implied:
            continue
        if not stated:
            flight_type[i] = implied
            continue
        errors.append(
            InvalidRecordError(
                i,
                TIPOVUELO,
                f"TIPOVUELO {stated!r} contradicts Des-I {airports[i]!r}: destinations "
                f"starting with {DOMESTIC_PREFIX} are domestic (N), all others international (I)",
            )
        )
    return errors


_ATTRIBUTE = {c.name: c.attribute for c in RAW_COLUMNS}


def _missing_required(
    raw: Mapping[str, Sequence],
    n_rows: int,
    parsed: Mapping[str, np.ndarray],
    missing: Mapping[str, list[int]],
    schema: InputSchema,
    already: set[int],
) -> list[InvalidRecordError]:
    """Rows where no field of a required group holds a value, after aliases and derivations (a value given
    but unusable is an error already, or, like an unknown city, not a missing value). Only the rows that gave
    none of a group's fields are looked at again, after derivation: the usual request gives them all."""
    errors = []
    for group in schema.required:
        if any(name in missing and not missing[name] for name in group):
            continue  # every row gave one of the group's fields: the usual request
        rows: set[int] | None = None
        for name in group:
            if name in missing:
                gave_none = set(missing[name])
            elif name in _ATTRIBUTE:  # a field this schema does not read
                gave_none = set(range(n_rows))
            else:  # a column parsed elsewhere (Fecha-O, in training)
                column = raw.get(name) or [None] * n_rows
                gave_none = {i for i, v in enumerate(column) if is_missing(v)}
            rows = gave_none if rows is None else rows & gave_none
        what = _MISSING if len(group) == 1 else f"{_MISSING} (give {' or '.join(group)})"
        errors += [
            InvalidRecordError(i, group[0], what)
            for i in sorted(rows or ())
            if i not in already and not any(_present(parsed, name, i) for name in group)
        ]
    return errors


def _present(parsed: Mapping[str, np.ndarray], name: str, row: int) -> bool:
    """Whether ``parsed`` holds a value for field ``name`` in ``row``, given or derived (Des-I, TIPOVUELO)."""
    if name not in _ATTRIBUTE:
        return False
    value = parsed[_ATTRIBUTE[name]][row]
    return not (np.isnat(value) if isinstance(value, np.datetime64) else value in (0, ""))
