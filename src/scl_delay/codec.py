"""Request bodies -> records, answers -> response bodies. No Flask, no pandas: this is the hot path.

Request formats (``Content-Type``; a ``charset`` parameter is honoured, UTF-8 by default):

- ``application/json``: ``{"instances": [record, ...]}``, ``{"flights": [record, ...]}``, ``[record, ...]``
  or one ``record``; a record is an object keyed by SCL column names, extra keys ignored. A body holding
  one object per line is read as JSON Lines;
- ``text/csv``: one record per line, with a header row (recognised by naming a known column) or without
  one, in which case a line of 4 values follows ``schema.HEADERLESS_FIELDS`` and a line of 18 the SCL
  layout (``schema.SCL_COLUMNS``);
- ``application/jsonlines`` (also ``application/jsonl``, ``application/x-jsonlines``,
  ``application/x-ndjson``): one record object per line.

Line for line, as Batch Transform assembles them (``SplitType=Line``, ``AssembleWith=Line``): every line
of a CSV or JSON Lines body is one slot of the answer, in order; the final newline ends the last line
and starts none; a blank line or a line that cannot be read is a slot holding an error. A CSV header line
is no record: a CSV answer starts with a header line of its own in its place, other answers have none.

A missing ``Content-Type`` is read as JSON. Response formats follow ``Accept`` through ``ENCODERS``, one
row per format saying whether it can carry explanations.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson

from .errors import InputError, NotAcceptableError, PayloadError, UnsupportedMediaTypeError
from .schema import HEADERLESS_FIELDS, SCL_COLUMNS
from .settings import OUTPUT_CHOICES

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
_RESPONSE_ALIASES = {
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "*/*": JSON,
    "application/*": JSON,
    "text/*": CSV,
}
REQUEST_TYPES = tuple(_REQUEST_TYPES)
RECORD_LISTS = ("instances", "flights")
CSV_EXTRA_COLUMNS = ("unknown", "error")  # after the chosen outputs, on every CSV answer line
_TOO_DEEP = "invalid JSON: nested too deeply (a record is a flat object)"
_BLANK = "blank line: no record"


def media_type(header: str | None) -> str:
    """``'Text/CSV; charset=utf-8'`` -> ``'text/csv'``."""
    return (header or "").split(";", 1)[0].strip().lower()


def charset(header: str | None) -> str:
    """The ``charset`` parameter of a Content-Type (``utf-8`` when absent); 415 for one Python lacks."""
    for param in (header or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip('"').lower()
            try:
                return codecs.lookup(value).name
            except LookupError:
                raise UnsupportedMediaTypeError(f"unsupported charset {value[:40]!r}") from None
    return "utf-8"


# ---------------------------------------------------------------- requests


@dataclass
class Records:
    """A decoded body: one slot per record (per line for CSV and JSON Lines), in order.

    ``columns`` holds, for each requested field, the raw value of every slot (None where absent);
    ``problems`` the slots that could not be read as a record at all; ``header`` the CSV header line.
    """

    columns: dict[str, list]
    count: int
    problems: dict[int, InputError] = field(default_factory=dict)
    header: tuple[str, ...] | None = None
    single: bool = False  # the body held one record (its error is the request's 400)
    listed: bool = True  # False: the body was one bare JSON object, not a list or lines of records


def decode_records(body: bytes, content_type: str | None, fields: Sequence[str]) -> Records:
    """Body -> ``Records`` for the schema's ``fields``.

    Raises ``UnsupportedMediaTypeError`` for other content types and ``PayloadError`` when the body
    cannot be read as records at all (empty, undecodable, not JSON, no records).
    """
    kind, encoding = _request_format(content_type)
    if not body or not body.strip():
        raise PayloadError("empty body: send at least one record")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as e:
        shown = body[e.start : e.start + 1]
        raise PayloadError(f"body is not {encoding.upper()} text (byte {e.start}: {shown!r})") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise PayloadError("empty body: send at least one record")
    if kind == JSON:
        return _json_records(text, fields)
    if kind == CSV:
        return _csv_records(text, fields)
    return _jsonlines_records(text, fields)


@functools.lru_cache(maxsize=256)  # clients send a handful of Content-Type spellings; errors are not cached
def _request_format(content_type: str | None) -> tuple[str, str]:
    """Content-Type -> (request format, character encoding)."""
    kind = _REQUEST_TYPES.get(media_type(content_type) or JSON)
    if kind is None:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {content_type!r}; send one of {', '.join(REQUEST_TYPES)}"
        )
    return kind, charset(content_type)


def _json_records(text: str, fields: Sequence[str]) -> Records:
    try:
        doc = _loads(text)
    except ValueError as e:
        if getattr(e, "msg", "") == "Extra data" and text.lstrip().startswith("{"):
            return _jsonlines_records(text, fields)  # one object per line, sent as application/json
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
            return Records({name: [doc.get(name)] for name in fields}, 1, single=True, listed=False)
    if not isinstance(doc, list):
        raise PayloadError(f"expected a record object or a list of records, got {_json_type(doc)}")
    if not doc:
        raise PayloadError("no records: send at least one")
    return _object_records(doc, fields, [None] * len(doc))


def _object_records(items: list, fields: Sequence[str], lines: Sequence[int | None]) -> Records:
    """Slots from parsed JSON values; a value that is no object (or an error already) is a problem slot."""
    problems: dict[int, InputError] = {}
    for i, item in enumerate(items):
        if isinstance(item, PayloadError):
            problems[i] = item
        elif not isinstance(item, dict):
            problems[i] = PayloadError(
                f"record {i}: expected an object keyed by column names, got {_json_type(item)}",
                lines[i],
                record=i,
            )
    records = [{} if i in problems else item for i, item in enumerate(items)]
    columns = {name: [r.get(name) for r in records] for name in fields}
    return Records(columns, len(items), problems, single=len(items) == 1)


def _jsonlines_records(text: str, fields: Sequence[str]) -> Records:
    items: list = []
    lines: list[int | None] = []
    for number, line in enumerate(body_lines(text), start=1):
        lines.append(number)
        if not line.strip():
            items.append(PayloadError(f"record {len(items)}: {_BLANK}", number, record=len(items)))
            continue
        try:
            items.append(_loads(line))
        except ValueError as e:
            reason = f"record {len(items)}: invalid JSON: {getattr(e, 'msg', e)}"
            items.append(PayloadError(reason, number, record=len(items)))
        except RecursionError:
            items.append(PayloadError(f"record {len(items)}: {_TOO_DEEP}", number, record=len(items)))
    return _object_records(items, fields, lines)


def _loads(text: str):
    """orjson, ~4x faster than the standard library for a record; what orjson refuses, the standard library
    decides. It reads NaN and Infinity too (Python's ``json.dumps`` writes them: such a value is a missing
    or invalid value of one record, not an unreadable body), and its messages are the ones clients know."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def body_lines(text: str) -> list[str]:
    """Lines split at \\n (and \\r\\n) only, the final newline ending the last line: ``str.splitlines`` would
    also split at U+2028, \\x0c, ... inside values."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, its values) for every CSV record, blank lines included (as ``[]``): the one
    CSV reader, for request bodies and training files. Quotes, commas and newlines inside values follow the
    csv module; text without quotes or carriage returns takes a faster path with the same result.
    ``PayloadError`` names the line it fails on."""
    if '"' not in text and "\r" not in text and "\x00" not in text:
        for number, line in enumerate(body_lines(text), start=1):
            yield number, (line.split(",") if line else [])
        return
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise PayloadError(f"invalid CSV: {e}", reader.line_num) from None


HEADERLESS_LAYOUTS = {len(HEADERLESS_FIELDS): HEADERLESS_FIELDS, len(SCL_COLUMNS): SCL_COLUMNS}


def _csv_records(text: str, fields: Sequence[str]) -> Records:
    if "\r" in text:  # lines end at \n only, as Batch Transform splits them: a lone \r is no line break
        text = text.replace("\r\n", "\n").replace("\r", " ")
    rows = list(csv_rows(text))
    known = set(fields) | set(SCL_COLUMNS)
    first = [v.strip() for v in rows[0][1]] if rows else []
    header = tuple(first) if any(name in known for name in first) else None
    if header is not None:
        rows = rows[1:]
        if not rows:
            raise PayloadError("CSV has a header but no records")
    layouts = (
        {len(header): tuple(header)}
        if header is not None
        else {width: layout for width, layout in HEADERLESS_LAYOUTS.items()}
    )
    positions = {
        width: [(name, layout.index(name)) for name in fields if name in layout]
        for width, layout in layouts.items()
    }
    widths = {len(row) for _, row in rows}
    if len(widths) == 1 and (where := positions.get(widths.pop())) is not None:
        return _same_layout_records(rows, fields, where, header)
    columns: dict[str, list] = {name: [] for name in fields}
    problems: dict[int, InputError] = {}
    for slot, (number, row) in enumerate(rows):
        where = positions.get(len(row))
        if where is None:
            problems[slot] = PayloadError(_bad_width(slot, row, header), number, record=slot)
            for values in columns.values():
                values.append(None)
            continue
        taken = {name: row[i].strip() for name, i in where}
        for name, values in columns.items():
            values.append(taken.get(name))
    return Records(columns, len(rows), problems, header, single=len(rows) == 1)


def _same_layout_records(
    rows: list[tuple[int, list[str]]],
    fields: Sequence[str],
    where: list[tuple[str, int]],
    header: tuple[str, ...] | None,
) -> Records:
    """Every line in one layout (the usual body): columns by transposing the lines, not line by line."""
    by_position = list(zip(*(row for _, row in rows)))
    columns: dict[str, list] = {name: [None] * len(rows) for name in fields}
    for name, i in where:
        columns[name] = list(map(str.strip, by_position[i]))
    return Records(columns, len(rows), {}, header, single=len(rows) == 1)


def _bad_width(slot: int, row: list[str], header: tuple[str, ...] | None) -> str:
    if not row or (len(row) == 1 and not row[0].strip()):
        return f"record {slot}: {_BLANK}"
    if header is not None:
        return f"record {slot}: expected {len(header)} columns, as the header's, got {len(row)}"
    return (
        f"record {slot}: expected {len(HEADERLESS_FIELDS)} columns ({','.join(HEADERLESS_FIELDS)}) "
        f"or the {len(SCL_COLUMNS)} of the SCL layout, got {len(row)}"
    )


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


@dataclass(frozen=True)
class Answers:
    """One answer per slot: a prediction (probability, decision at the threshold, unknown fields) or an error.

    ``probabilities[i]`` and ``decisions[i]`` are None where ``errors`` has slot ``i``.
    """

    probabilities: list
    decisions: list  # bool, as answered (not 0/1)
    unknown: list  # per slot, a tuple of the fields whose value the model never saw (scored as missing)
    errors: dict[int, InputError]
    outputs: tuple[str, ...]
    model_version: str
    threshold: float
    explanations: list | None = None
    header: bool = False  # the request was CSV with a header line

    def record(self, i: int) -> dict:
        """Slot ``i`` as a JSON object: the chosen outputs (+ ``unknown`` when any), or
        ``{"error": {...}}``."""
        if i in self.errors:
            return {"error": self.errors[i].document()["error"]}
        record = {}
        if "probability" in self.outputs:
            record["probability"] = self.probabilities[i]
        if "decision" in self.outputs:
            record["decision"] = bool(self.decisions[i])
        if self.unknown[i]:
            record["unknown"] = list(self.unknown[i])
        if self.explanations is not None:
            record["explanation"] = self.explanations[i].to_dict()
        return record


def _records(answers: Answers) -> list[dict]:
    """Every slot's JSON object; the usual answer (both outputs, no error, no explanation) built without a
    call per slot."""
    if answers.errors or answers.explanations is not None or answers.outputs != OUTPUT_CHOICES:
        return [answers.record(i) for i in range(len(answers.probabilities))]
    return [
        {"probability": p, "decision": d, "unknown": list(u)} if u else {"probability": p, "decision": d}
        for p, d, u in zip(answers.probabilities, answers.decisions, answers.unknown)
    ]


def _json_body(answers: Answers) -> bytes:
    return orjson.dumps(
        {
            "predictions": _records(answers),
            "model_version": answers.model_version,
            "threshold": answers.threshold,
        }
    )


def _jsonlines_body(answers: Answers) -> bytes:
    line = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(record, option=line) for record in _records(answers))


def _csv_body(answers: Answers) -> bytes:
    """One line per slot: the chosen outputs (decision 1 = delayed), the unknown fields joined by ``;``, and
    the error as ``code: message``; an error line leaves the outputs empty."""
    want_p, want_d = "probability" in answers.outputs, "decision" in answers.outputs
    lines = [",".join((*answers.outputs, *CSV_EXTRA_COLUMNS)) + "\n"] if answers.header else []
    empty = "," * (want_p + want_d)
    errors = answers.errors
    for i, (p, d, unknown) in enumerate(zip(answers.probabilities, answers.decisions, answers.unknown)):
        if errors and i in errors:
            lines.append(f"{empty},{_csv_cell(f'{errors[i].code}: {errors[i]}')}\n")
            continue
        probability = (repr(p) if math.isfinite(p) else "nan") + "," if want_p else ""
        decision = ("1," if d else "0,") if want_d else ""
        lines.append(f"{probability}{decision}{';'.join(unknown)},\n")
    return "".join(lines).encode()


def _csv_cell(text: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text.replace("\n", " ").replace("\r", " ")])
    return out.getvalue()


@dataclass(frozen=True)
class Encoder:
    """A response format: its media type, its encoding function, and whether it can carry explanations."""

    media_type: str
    encode: Callable[[Answers], bytes]
    explains: bool


ENCODERS = {
    JSON: Encoder(JSON, _json_body, explains=True),
    CSV: Encoder(CSV, _csv_body, explains=False),
    JSONLINES: Encoder(JSONLINES, _jsonlines_body, explains=True),
}
RESPONSE_TYPES = tuple(ENCODERS)


def negotiate(accept: str | None, explain: bool = False) -> Encoder:
    """``Accept`` header -> an ``ENCODERS`` row (JSON when absent); ``NotAcceptableError`` otherwise.

    Media ranges are taken in the order given, except that a range with ``q=0`` is skipped. Asking for
    explanations in a format that cannot carry them is refused here, the one place that rule lives.
    """
    encoder = ENCODERS[JSON] if not accept or not accept.strip() else _first_acceptable(accept)
    if explain and not encoder.explains:
        explaining = ", ".join(e.media_type for e in ENCODERS.values() if e.explains)
        raise NotAcceptableError(f"explanations need Accept {explaining}, not {encoder.media_type}")
    return encoder


@functools.lru_cache(maxsize=256)
def _first_acceptable(accept: str) -> Encoder:
    for part in accept.split(","):
        kind, _, params = part.partition(";")
        if "q=0" in params.replace(" ", "").lower() and not _positive_q(params):
            continue
        kind = kind.strip().lower()
        found = ENCODERS.get(_RESPONSE_ALIASES.get(kind, kind))
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


# -------------------------------------------------------------- the earlier delay service's answer (issue 16)

DELAY_CLASSES = {True: "Alta probabilidad de atraso", False: "Baja probabilidad de atraso"}


def legacy_body(answers: Answers, single: bool) -> bytes:
    """``{"delay_probability": 0.14, "clase": ["Baja probabilidad de atraso"]}`` per record, as the service
    this project replaces answered; a list for several records, an ``{"error": ...}`` entry for an invalid
    one."""

    def one(i: int) -> dict:
        if i in answers.errors:
            return answers.errors[i].document()
        record = {
            "delay_probability": answers.probabilities[i],
            "clase": [DELAY_CLASSES[bool(answers.decisions[i])]],
        }
        if answers.unknown[i]:
            record["unknown"] = list(answers.unknown[i])
        return record

    records = [one(i) for i in range(len(answers.probabilities))]
    return orjson.dumps(records[0] if single else records)
