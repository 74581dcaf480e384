"""Read a training channel (one CSV file or a folder of them) into validated, labelled flight columns.

Survives the real file: UTF-8 or Latin-1, the accented ``AÑO`` header, flight numbers read as text,
duplicate rows, blank lines, quoted values with commas or newlines. Every unusable row (a value that does not
parse, a row with the wrong number of fields) is counted and named by file, line and column; none is dropped
silently, and training stops when they are more than ``max_invalid_fraction`` of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .codec import csv_rows
from .errors import DatasetError, PayloadError
from .features import delay_label
from .schema import (
    DES_I,
    FECHA_I,
    FECHA_O,
    OPERA,
    TIPOVUELO,
    FlightColumns,
    InputSchema,
    parse_columns,
    parse_timestamps,
)

TRAINING_SCHEMA = InputSchema(
    fields=(FECHA_I, OPERA, TIPOVUELO, DES_I),
    required=((FECHA_I,), (FECHA_O,), (OPERA,), (TIPOVUELO,), (DES_I,)),
)
REQUIRED_COLUMNS = (FECHA_I, FECHA_O, OPERA, TIPOVUELO, DES_I)
ENCODINGS = ("utf-8-sig", "latin-1")
SKIPPED_PREFIXES = (".", "_")  # hidden files, and markers such as _SUCCESS or _manifest in a channel folder


@dataclass(frozen=True)
class RowProblem:
    source: str  # "file.csv line 12"
    field: str | None  # None: the row as a whole (e.g. the wrong number of fields)
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.reason}"
            if self.field is None
            else f"{self.source}, column {self.field}: {self.reason}"
        )


@dataclass
class LabeledFlights:
    columns: FlightColumns
    label: np.ndarray
    rows_read: int
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0
    files: list[str] = field(default_factory=list)

    def quality(self) -> dict:
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_used": len(self.label),
            "duplicate_rows_dropped": self.duplicates,
            "unusable_rows": len({p.source for p in self.problems}),
            "problems": [str(p) for p in self.problems[:1000]],
        }


@dataclass
class RawRows:
    """The required columns of a channel as text, one entry per distinct well-formed record."""

    columns: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in REQUIRED_COLUMNS})
    sources: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)  # rows that could not be read at all
    records: int = 0  # every record read, bad and duplicate ones included
    duplicates: int = 0


def channel_files(channel: Path) -> list[Path]:
    if channel.is_file():
        return [channel]
    if not channel.is_dir():
        raise DatasetError(f"training data not found: {channel} does not exist")
    files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith(SKIPPED_PREFIXES))
    if not files:
        raise DatasetError(f"no data files in channel folder {channel}")
    return files


def _text(path: Path) -> str:
    data = path.read_bytes()
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")


def read_csv(path: Path, into: RawRows, seen: set[tuple[str, ...]]) -> None:
    """Add the file's records to ``into``: all values as text (flight numbers are not always numeric)."""
    text = _text(path)
    if not text.strip():
        raise DatasetError(f"{path.name} is empty: expected a CSV header and rows")
    rows = csv_rows(text)
    try:
        _, header = next(rows)
        header = [c.strip() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{path.name}: missing required column(s) {', '.join(missing)}; "
                f"found {', '.join(repr(c)[:40] for c in header[:20])}"
            )
        positions = [header.index(c) for c in REQUIRED_COLUMNS]
        records_before = into.records
        for line, row in rows:
            into.records += 1
            if len(row) != len(header):
                into.problems.append(
                    RowProblem(
                        f"{path.name} line {line}",
                        None,
                        f"expected {len(header)} fields as in the header, got {len(row)}",
                    )
                )
                continue
            values = tuple(v.strip() for v in row)
            if values in seen:
                into.duplicates += 1
                continue
            seen.add(values)
            for name, i in zip(REQUIRED_COLUMNS, positions):
                into.columns[name].append(values[i])
            into.sources.append(f"{path.name} line {line}")
    except PayloadError as e:
        raise DatasetError(f"{path.name} line {e.line}: not a readable CSV: {e.reason}") from None
    if into.records == records_before:
        raise DatasetError(f"{path.name} has a header but no rows")


def load_channel(channel: Path, max_invalid_fraction: float) -> LabeledFlights:
    files, raw, seen = channel_files(channel), RawRows(), set[tuple[str, ...]]()
    for path in files:
        read_csv(path, raw, seen)
    flights = label_flights(raw, max_invalid_fraction)
    flights.files = [p.name for p in files]
    return flights


def label_flights(raw: RawRows, max_invalid_fraction: float) -> LabeledFlights:
    n = len(raw.sources)
    columns, errors = parse_columns(raw.columns, n, TRAINING_SCHEMA)
    operated, operated_errors = parse_timestamps(raw.columns[FECHA_O], FECHA_O)
    errors = sorted(errors + operated_errors, key=lambda e: e.index)
    valid = columns.valid.copy()
    valid[[e.index for e in operated_errors]] = False
    problems = raw.problems + [RowProblem(raw.sources[e.index], e.field, e.reason) for e in errors]
    _check_invalid_share(
        problems, int((~valid).sum()) + len(raw.problems), raw.records - raw.duplicates, max_invalid_fraction
    )
    label = delay_label(columns.scheduled[valid], operated[valid])
    return LabeledFlights(columns.subset(valid), label, raw.records, problems, raw.duplicates)


def _check_invalid_share(problems: list[RowProblem], invalid: int, total: int, max_fraction: float) -> None:
    if invalid and invalid / total > max_fraction:
        first = "; ".join(str(p)[:200] for p in problems[:5])
        raise DatasetError(
            f"{invalid} of {total} rows unusable ({invalid / total:.2%}), more than "
            f"max_invalid_fraction={max_fraction}; the first: {first}"
        )
