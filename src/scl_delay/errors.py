"""Exceptions by whose fault they are.

``InputError`` and its subclasses: the caller (a training file, a request, a hyperparameter) can fix it,
and the message is safe to show. Anything else is ours. Errors carry data, never an HTTP status:
``server.py`` owns the one mapping from error type to status.
"""

from __future__ import annotations

MAX_LISTED_ERRORS = 100  # an all-or-nothing 400 lists at most this many invalid records


def error_document(code: str, message: str, **extra) -> dict:
    """The one shape of every error body: ``{"error": {"code", "message", "record", "field", ...}}``."""
    return {"error": {"code": code, "message": message, "record": None, "field": None, **extra}}


class InputError(Exception):
    """The input can be fixed by whoever supplied it; ``str(e)`` is safe to show them."""

    code = "invalid_input"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": str(self)}

    def document(self) -> dict:
        return error_document(**self.to_dict())


class InvalidRecordError(InputError):
    """One record (a request record or a training-file row) has an invalid field."""

    code = "invalid_record"

    def __init__(self, index: int, field: str, reason: str, *, noun: str = "record"):
        self.index, self.field, self.reason = index, field, reason
        super().__init__(f"{noun} {index}: {field}: {reason}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "record": self.index, "field": self.field}


class PayloadError(InputError):
    """The body or file cannot be parsed at all (bad JSON, bad CSV, wrong encoding, empty)."""

    code = "invalid_payload"

    def __init__(self, reason: str, line: int | None = None, record: int | None = None):
        self.reason, self.line, self.record = reason, line, record
        super().__init__(reason if line is None else f"line {line}: {reason}")

    def to_dict(self) -> dict:
        body = super().to_dict()
        if self.record is not None:
            body["record"] = self.record
        return body if self.line is None else {**body, "line": self.line}


class InvalidRecordsError(InputError):
    """Several records of one request are invalid and the caller asked for all or nothing (``on_error=fail``).

    The body is the first error's, plus ``invalid_records`` (how many) and ``errors`` (each, up to a cap).
    """

    def __init__(self, errors: list[InputError]):
        self.errors, self.first = errors, errors[0]
        self.code = self.first.code
        super().__init__(str(self.first))

    def to_dict(self) -> dict:
        listed = [e.document()["error"] for e in self.errors[:MAX_LISTED_ERRORS]]
        return {**self.first.document()["error"], "invalid_records": len(self.errors), "errors": listed}


class UnsupportedMediaTypeError(InputError):
    code = "unsupported_media_type"


class NotAcceptableError(InputError):
    code = "not_acceptable"


class RequestParameterError(InputError):
    """A query parameter or header of a request has a value we cannot use; the message names it."""

    code = "invalid_parameter"


class HyperparameterError(InputError):
    """A hyperparameter is unknown, malformed or out of range; the message names the key."""

    code = "invalid_hyperparameter"


class DatasetError(InputError):
    """The training data cannot be used: missing channel or column, too many bad rows, one class only."""

    code = "invalid_dataset"


class SettingsError(InputError):
    """An environment variable has a value we cannot use; the message names variable and value."""

    code = "invalid_setting"


class ArtifactError(Exception):
    """The model folder is missing, incomplete or corrupt (not the caller's fault)."""
