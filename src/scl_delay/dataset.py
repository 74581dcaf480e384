"""Read a training channel (one CSV file or a folder of them) into validated, labelled flight columns.

Survives the real file: UTF-8 or Latin-1, the accented ``AÑO`` header, flight numbers read as text,
duplicate rows. Every unusable row is counted and named (file, line, column); none is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DatasetError
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

TRAINING_SCHEMA = InputSchema(fields=(FECHA_I, OPERA, TIPOVUELO, DES_I),
                              required=((FECHA_I,), (FECHA_O,), (OPERA,), (TIPOVUELO,), (DES_I,)))
REQUIRED_COLUMNS = (FECHA_I, FECHA_O, OPERA, TIPOVUELO, DES_I)
ENCODINGS = ("utf-8-sig", "latin-1")


@dataclass(frozen=True)
class RowProblem:
    source: str  # "file.csv line 12"
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}, column {self.field}: {self.reason}"


@dataclass
class LabeledFlights:
    columns: FlightColumns
    label: np.ndarray
    rows_read: int
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0
    files: list[str] = field(default_factory=list)

    def quality(self) -> dict:
        return {"files": self.files, "rows_read": self.rows_read, "rows_used": len(self.label),
                "duplicate_rows_dropped": self.duplicates, "unusable_rows": len({p.source for p in self.problems}),
                "problems": [str(p) for p in self.problems[:1000]]}


def channel_files(channel: Path) -> list[Path]:
    if channel.is_file():
        return [channel]
    if not channel.is_dir():
        raise DatasetError(f"training data not found: {channel} does not exist")
    files = sorted(p for p in channel.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"no data files in channel folder {channel}")
    return files


def read_csv(path: Path) -> pd.DataFrame:
    """All columns as text (flight numbers are not always numeric); UTF-8, else Latin-1."""
    for encoding in ENCODINGS:
        try:
            frame = pd.read_csv(path, dtype=str, encoding=encoding, skipinitialspace=True)
            break
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            raise DatasetError(f"{path.name} is empty: expected a CSV header and rows") from None
        except pd.errors.ParserError as e:
            raise DatasetError(f"{path.name} is not a readable CSV: {str(e).strip()}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path.name}: missing required column(s) {', '.join(missing)}; "
                           f"found {', '.join(frame.columns[:20])}")
    if frame.empty:
        raise DatasetError(f"{path.name} has a header but no rows")
    return frame


def load_channel(channel: Path, max_invalid_fraction: float) -> LabeledFlights:
    frames = []
    for path in channel_files(channel):
        frame = read_csv(path)
        frame["_source"] = [f"{path.name} line {i + 2}" for i in range(len(frame))]  # line 1 is the header
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    duplicated = data.drop(columns="_source").duplicated().to_numpy()
    data = data[~duplicated].reset_index(drop=True)
    flights = label_flights(data, max_invalid_fraction)
    flights.duplicates, flights.files = int(duplicated.sum()), [p.name for p in channel_files(channel)]
    flights.rows_read += flights.duplicates
    return flights


def label_flights(data: pd.DataFrame, max_invalid_fraction: float) -> LabeledFlights:
    raw = {name: data[name].to_numpy(dtype=object) for name in REQUIRED_COLUMNS}
    columns, errors = parse_columns(raw, len(data), TRAINING_SCHEMA)
    operated, operated_errors = parse_timestamps(raw[FECHA_O], FECHA_O)
    errors = sorted(errors + operated_errors, key=lambda e: e.index)
    valid = columns.valid.copy()
    valid[[e.index for e in operated_errors]] = False
    sources = data["_source"].to_numpy() if "_source" in data else np.arange(len(data)).astype(str)
    problems = [RowProblem(sources[e.index], e.field, e.reason) for e in errors]
    _check_invalid_share(problems, int((~valid).sum()), len(data), max_invalid_fraction)
    label = delay_label(columns.scheduled[valid], operated[valid])
    return LabeledFlights(columns.subset(valid), label, len(data), problems)


def _check_invalid_share(problems: list[RowProblem], invalid: int, total: int, max_fraction: float) -> None:
    if invalid and invalid / total > max_fraction:
        first = "; ".join(str(p) for p in problems[:5])
        raise DatasetError(f"{first} ({invalid} of {total} rows unusable, {invalid / total:.2%}, more than "
                           f"max_invalid_fraction={max_fraction}; see the listed rows)")

