"""SCL column names and the validation of flight records, shared by training and serving.

Values arrive as columns (one sequence of raw values per field): from a CSV file at training time,
from request records at serving time. ``parse_columns`` checks every value and returns the parsed
columns plus one ``InvalidRecordError`` per bad value, so `train` can report row numbers and the server
can name the record and field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
TEXT_COLUMNS = (VLO_I, VLO_O)  # flight numbers: mostly digits, sometimes not; always read as text
FLIGHT_TYPES = ("I", "N")
TIMESTAMP_FORMAT = "YYYY-MM-DD HH:MM[:SS]"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?", re.ASCII)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
SHOWN_CHARS = 80  # an error message echoes at most this much of a bad value
_MISSING = "missing required field"


@dataclass(frozen=True)
class InputSchema:
    """What a model needs from each record.

    ``fields`` is the column order of header-less CSV. Each group in ``required`` needs at least one
    of its fields (the challenge model takes its month from ``MES`` or from ``Fecha-I``).
    ``categories`` lists the allowed values of categorical fields.
    """

    fields: tuple[str, ...]
    required: tuple[tuple[str, ...], ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "fields": list(self.fields),
            "required": [list(g) for g in self.required],
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> InputSchema:
        return cls(
            tuple(doc["fields"]),
            tuple(tuple(g) for g in doc["required"]),
            {k: tuple(v) for k, v in doc["categories"].items()},
        )


@dataclass(frozen=True)
class FlightColumns:
    """Parsed, validated columns. Rows that failed validation hold placeholders; see ``valid``."""

    scheduled: np.ndarray  # datetime64[s]; NaT where Fecha-I was not given
    month: np.ndarray  # int8, 1..12: from Fecha-I when given, else MES
    airline: np.ndarray  # object (str)
    flight_type: np.ndarray  # object (str), "I" or "N"
    destination: np.ndarray  # object (str); "" where the model does not use it
    valid: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.valid)

    def subset(self, mask: np.ndarray) -> FlightColumns:
        return FlightColumns(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def shown(value) -> str:
    """``repr(value)``, cut to ``SHOWN_CHARS``: an error must not echo a megabyte back."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def is_missing(value) -> bool:
    if value.__class__ is str:  # the usual case first: this runs for every value of every request
        return not value.strip()
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def parse_timestamps(values: Sequence, field_name: str) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """Strict ``YYYY-MM-DD HH:MM[:SS]`` strings -> datetime64[s]; missing values become NaT."""
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[s]")
    errors, ok_index, ok_text = [], [], []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value.strip()):
            errors.append(
                InvalidRecordError(
                    i, field_name, f"expected a date-time {TIMESTAMP_FORMAT}, got {shown(value)}"
                )
            )
            continue
        ok_index.append(i)
        ok_text.append(value.strip())
    try:
        out[ok_index] = np.array(ok_text, dtype="datetime64[s]")
    except ValueError:  # an impossible calendar date (2017-02-30) somewhere: find which, one by one
        for i, text in zip(ok_index, ok_text):
            try:
                out[i] = np.datetime64(text, "s")
            except ValueError:
                errors.append(InvalidRecordError(i, field_name, f"not a calendar date-time: {shown(text)}"))
    return out, errors


def parse_months(values: Sequence) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """``MES``: a whole number 1..12 (or its text, as in CSV); 0 where missing."""
    out = np.zeros(len(values), dtype=np.int8)
    errors = []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        month = _whole_number(value)
        if month is None or not 1 <= month <= 12:
            errors.append(InvalidRecordError(i, MES, f"expected a month number 1-12, got {shown(value)}"))
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


def parse_categories(
    values: Sequence, field_name: str, allowed: Sequence[str] | None
) -> tuple[np.ndarray, list[InvalidRecordError]]:
    """Text values, checked against ``allowed`` when given; missing values become ""."""
    allowed_set = None if allowed is None else frozenset(allowed)
    out = np.full(len(values), "", dtype=object)
    errors = []
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        if not isinstance(value, str):
            errors.append(
                InvalidRecordError(i, field_name, f"expected text, got {type(value).__name__} {shown(value)}")
            )
        elif allowed_set is not None and value not in allowed_set:
            errors.append(InvalidRecordError(i, field_name, _unknown(field_name, value, allowed or ())))
        else:
            out[i] = value
    return out, errors


def _unknown(field_name: str, value: str, allowed: Sequence[str]) -> str:
    listed = ", ".join(repr(a) for a in list(allowed)[:30])
    more = f" and {len(allowed) - 30} more" if len(allowed) > 30 else ""
    return f"unknown value {shown(value)}; expected one of {listed}{more}"


def parse_columns(
    raw: Mapping[str, Sequence], n_rows: int, schema: InputSchema
) -> tuple[FlightColumns, list[InvalidRecordError]]:
    """Validate raw columns against ``schema``; absent fields count as missing in every row."""

    def column(name: str) -> Sequence:
        return raw[name] if name in raw else [None] * n_rows

    errors = _missing_required(raw, n_rows, schema)
    categories = dict(schema.categories)
    categories.setdefault(TIPOVUELO, FLIGHT_TYPES)
    scheduled, e1 = parse_timestamps(column(FECHA_I), FECHA_I)
    given_month, e2 = parse_months(column(MES)) if MES in schema.fields else (np.zeros(n_rows, np.int8), [])
    airline, e3 = parse_categories(column(OPERA), OPERA, categories.get(OPERA))
    flight_type, e4 = parse_categories(column(TIPOVUELO), TIPOVUELO, categories[TIPOVUELO])
    destination, e5 = (
        parse_categories(column(DES_I), DES_I, categories.get(DES_I))
        if DES_I in schema.fields
        else (np.full(n_rows, "", dtype=object), [])
    )
    errors += e1 + e2 + e3 + e4 + e5
    month = np.where(np.isnat(scheduled), given_month, scheduled.astype("datetime64[M]").astype(int) % 12 + 1)
    valid = np.ones(n_rows, dtype=bool)
    valid[[e.index for e in errors]] = False
    errors.sort(key=lambda e: e.index)
    return FlightColumns(scheduled, month.astype(np.int8), airline, flight_type, destination, valid), errors


def _missing_required(
    raw: Mapping[str, Sequence], n_rows: int, schema: InputSchema
) -> list[InvalidRecordError]:
    errors = []
    for group in schema.required:
        given = [raw[name] for name in group if name in raw]
        what = _MISSING if len(group) == 1 else f"{_MISSING} (give {' or '.join(group)})"
        if len(given) == 1:
            missing = [i for i, value in enumerate(given[0]) if is_missing(value)]
        else:
            missing = [i for i in range(n_rows) if all(is_missing(column[i]) for column in given)]
        errors += [InvalidRecordError(i, group[0], what) for i in missing]
    return errors
