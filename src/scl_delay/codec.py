"""Request bodies -> raw columns, predictions -> response bodies. No Flask, no pandas: this is the hot path.

Request formats (``Content-Type``, parameters such as ``charset=utf-8`` are ignored; UTF-8 only):

- ``application/json``: ``{"instances": [record, ...]}``, ``{"flights": [record, ...]}``, ``[record, ...]``
  or one ``record``; a record is an object keyed by SCL column names, extra keys ignored;
- ``text/csv``: one record per line, with a header row (recognised by naming a schema field) or without
  one, in which case the columns follow ``InputSchema.fields``;
- ``application/jsonlines`` (also ``application/jsonl``, ``application/x-jsonlines``,
  ``application/x-ndjson``): one record object per line.

A missing ``Content-Type`` is read as JSON. Response formats follow ``Accept``: JSON (default, also for
``*/*``), CSV (``text/csv``, no header: one line per record with the chosen outputs in the order
probability, decision) or JSON lines.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import NotAcceptableError, PayloadError, UnsupportedMediaTypeError

JSON = "application/json"
CSV = "text/csv"
JSONLINES = "application/jsonlines"
_REQUEST_TYPES = {
    JSON: JSON,
    CSV: CSV,
    JSONLINES: JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
}
_RESPONSE_TYPES = {
    JSON: JSON,
    CSV: CSV,
    JSONLINES: JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "*/*": JSON,
    "application/*": JSON,
    "text/*": CSV,
}
REQUEST_TYPES = tuple(_REQUEST_TYPES)
RESPONSE_TYPES = (JSON, CSV, JSONLINES)
RECORD_LISTS = ("instances", "flights")
_TOO_DEEP = "invalid JSON: nested too deeply (a record is a flat object)"


def media_type(header: str | None) -> str:
    """``'Text/CSV; charset=utf-8'`` -> ``'text/csv'``."""
    return (header or "").split(";", 1)[0].strip().lower()


# ---------------------------------------------------------------- requests


def decode_records(
    body: bytes, content_type: str | None, fields: Sequence[str]
) -> tuple[dict[str, list], int]:
    """Body -> ({field: [raw value per record]} for the schema's ``fields``, number of records).

    Raises ``UnsupportedMediaTypeError`` for other content types and ``PayloadError`` when the body
    cannot be read as records at all (empty, not UTF-8, bad JSON or CSV, no records).
    """
    kind = _REQUEST_TYPES.get(media_type(content_type) or JSON)
    if kind is None:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {content_type!r}; send one of {', '.join(REQUEST_TYPES)}"
        )
    if not body or not body.strip():
        raise PayloadError("empty body: send at least one record")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError(
            f"body is not UTF-8 text (byte {e.start}: {body[e.start : e.start + 1]!r})"
        ) from None
    text = text.removeprefix("\ufeff")
    if kind == JSON:
        return _json_columns(text, fields)
    if kind == CSV:
        return _csv_columns(text, fields)
    return _jsonlines_columns(text, fields)


def _json_columns(text: str, fields: Sequence[str]) -> tuple[dict[str, list], int]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise PayloadError(f"invalid JSON: {getattr(e, 'msg', e)}", getattr(e, "lineno", None)) from None
    except RecursionError:  # e.g. "[[[[..." thousands deep: json's decoder recurses per level
        raise PayloadError(_TOO_DEEP) from None
    if isinstance(doc, dict):
        for key in RECORD_LISTS:
            if key in doc:
                doc = doc[key]
                if not isinstance(doc, list):
                    raise PayloadError(f"{key!r} must be a list of records, got {_json_type(doc)}")
                break
        else:  # one record: the fastest path
            return {name: [doc.get(name)] for name in fields}, 1
    if not isinstance(doc, list):
        raise PayloadError(f"expected a record object or a list of records, got {_json_type(doc)}")
    return _record_columns(doc, fields)


def _record_columns(
    records: list, fields: Sequence[str], lines: Sequence[int] | None = None
) -> tuple[dict[str, list], int]:
    if not records:
        raise PayloadError("no records: send at least one")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise PayloadError(
                f"record {i}: expected an object keyed by column names, got {_json_type(record)}",
                None if lines is None else lines[i],
                record=i,
            )
    return {name: [r.get(name) for r in records] for name in fields}, len(records)


def _jsonlines_columns(text: str, fields: Sequence[str]) -> tuple[dict[str, list], int]:
    records, lines = [], []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise PayloadError(f"invalid JSON: {getattr(e, 'msg', e)}", number) from None
        except RecursionError:
            raise PayloadError(_TOO_DEEP, number) from None
        lines.append(number)
    return _record_columns(records, fields, lines)


def _lines(text: str) -> list[str]:
    """Lines split at \\n (and \\r\\n) only: ``str.splitlines`` would also split at U+2028, \\x0c, ... in values."""
    return text.replace("\r\n", "\n").split("\n")


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, its values) for every non-blank CSV record, header included; the csv
    module handles quotes, commas and newlines inside values. ``PayloadError`` names the line it fails on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for row in reader:
            if any(v.strip() for v in row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise PayloadError(f"invalid CSV: {e}", reader.line_num) from None


def _csv_columns(text: str, fields: Sequence[str]) -> tuple[dict[str, list], int]:
    if '"' in text:  # quoted values
        rows = list(csv_rows(text))
    else:  # the usual case, ~10x faster than csv.reader
        rows = [(n, line.split(",")) for n, line in enumerate(_lines(text), start=1) if line.strip()]
    if not rows:
        raise PayloadError("no records: send at least one")
    first = [v.strip() for v in rows[0][1]]
    if any(name in first for name in fields):
        header, rows = first, rows[1:]
        if not rows:
            raise PayloadError("CSV has a header but no records")
        positions = {name: header.index(name) for name in fields if name in header}
    else:
        header, positions = list(fields), {name: i for i, name in enumerate(fields)}
    width = len(header)
    for number, row in rows:
        if len(row) != width:
            what = "the header's" if header is not fields else f"the model's fields ({', '.join(fields)})"
            raise PayloadError(f"expected {width} columns, as {what}, got {len(row)}", number)
    return {name: [row[i].strip() for _, row in rows] for name, i in positions.items()}, len(rows)


def _json_type(value) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- responses


def negotiate(accept: str | None) -> str:
    """``Accept`` header -> one of ``RESPONSE_TYPES`` (JSON when absent); ``NotAcceptableError`` otherwise.

    Media ranges are taken in the order given, except that a range with ``q=0`` is skipped.
    """
    if not accept or not accept.strip():
        return JSON
    for part in accept.split(","):
        kind, _, params = part.partition(";")
        if "q=0" in params.replace(" ", "").lower() and not _positive_q(params):
            continue
        found = _RESPONSE_TYPES.get(kind.strip().lower())
        if found:
            return found
    raise NotAcceptableError(f"cannot answer with Accept {accept!r}; accepted: {', '.join(RESPONSE_TYPES)}")


def _positive_q(params: str) -> bool:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "q":
            try:
                return float(value) > 0
            except ValueError:
                return False
    return True


@dataclass(frozen=True)
class Explanation:
    """The features that pushed one record's log-odds up and down the most, strongest first."""

    up: tuple[tuple[str, float], ...]
    down: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict:
        return {
            "up": [{"feature": f, "contribution": c} for f, c in self.up],
            "down": [{"feature": f, "contribution": c} for f, c in self.down],
        }


def encode_predictions(
    probabilities: Sequence[float],
    decisions: Sequence[bool],
    threshold: float,
    outputs: Sequence[str],
    model_version: str,
    kind: str,
    explanations: Sequence[Explanation] | None = None,
) -> bytes:
    """Predictions -> body in ``kind`` (a ``RESPONSE_TYPES`` entry).

    ``outputs`` picks what each record carries: ``probability`` (float) and/or ``decision`` (true when
    the flight is predicted delayed: ``probability >= threshold`` as the caller computed it). JSON wraps
    the records as
    ``{"predictions": [...], "model_version", "threshold"}``; CSV has one headerless line per record;
    JSON lines one object per record. Explanations are not available in CSV.
    """
    want_p, want_d = "probability" in outputs, "decision" in outputs
    if kind == CSV:
        if explanations is not None:
            raise NotAcceptableError(
                "explanations need Accept application/json or application/jsonlines, not CSV"
            )
        if want_p and want_d:
            lines = [f"{_num(p)},{1 if d else 0}\n" for p, d in zip(probabilities, decisions)]
        elif want_p:
            lines = [f"{_num(p)}\n" for p in probabilities]
        else:
            lines = ["1\n" if d else "0\n" for d in decisions]
        return "".join(lines).encode()
    records = []
    for i, p in enumerate(probabilities):
        record: dict[str, object] = {}
        if want_p:
            record["probability"] = p
        if want_d:
            record["decision"] = bool(decisions[i])
        if explanations is not None:
            record["explanation"] = explanations[i].to_dict()
        records.append(record)
    if kind == JSONLINES:
        return "".join(json.dumps(r, allow_nan=False) + "\n" for r in records).encode()
    return json.dumps(
        {"predictions": records, "model_version": model_version, "threshold": threshold}, allow_nan=False
    ).encode()


def _num(p: float) -> str:
    return repr(p) if math.isfinite(p) else "nan"
