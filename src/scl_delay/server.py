"""The inference server: SageMaker's /ping, /invocations and /execution-parameters. The sole Flask importer.

Scoring itself (``scoring.Scorer``, its prediction cache and explanations) is transport-free;
``create_app`` is the thin Flask adapter with the one error -> status table.

Per-request options, by precedence: query parameter, then ``X-Amzn-SageMaker-Custom-Attributes``
(``output=probability;explain=true``, which is how SageMaker's InvokeEndpoint ``CustomAttributes`` reach
the container), then the environment default:

- ``output``: ``probability``, ``decision``, ``both`` or ``probability,decision`` (default from
  ``SAGEMAKER_INFERENCE_OUTPUT``, else both);
- ``explain``: ``true``/``1``/``yes`` adds, per record, the features that pushed the delay log-odds up
  and down the most (XGBoost's own SHAP contributions); ``top`` (1-20, default 3) sets how many.

Invalid records: all-or-nothing. One invalid record fails the whole request with 400 naming the first bad
record (0-based index) and field, as SageMaker batch transform expects one answer line per input line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .artifact import LoadedModel, load_model
from .codec import CSV, decode_records, encode_predictions, negotiate
from .errors import (
    ArtifactError,
    InputError,
    InvalidRecordError,
    NotAcceptableError,
    PayloadError,
    RequestParameterError,
    UnsupportedMediaTypeError,
)
from .scoring import Scorer
from .settings import ServeSettings, parse_output

log = logging.getLogger(__name__)

_STATUS: dict[type[InputError], int] = {
    InvalidRecordError: 400,
    PayloadError: 400,
    RequestParameterError: 400,
    UnsupportedMediaTypeError: 415,
    NotAcceptableError: 406,
}
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
MODEL_VERSION_HEADER = "X-Model-Version"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
MAX_TOP = 20
_SMALL_NUMBER = re.compile(r"[0-9]{1,3}")
_JSON_MIME = "application/json"


def status_for(error: InputError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def request_options(
    query: Mapping[str, str], custom_attributes: str | None, settings: ServeSettings
) -> tuple[tuple[str, ...], bool, int]:
    """(output choices, explain flag, top-k) from the query string, then custom attributes, then settings."""
    attributes = {}
    if custom_attributes:
        for part in custom_attributes.split(";"):
            name, sep, value = part.partition("=")
            if sep:
                attributes[name.strip().lower()] = value.strip()

    def get(name: str) -> tuple[str, str] | None:
        if name in query:
            return f"query parameter {name}", query[name]
        if name in attributes:
            return f"{CUSTOM_ATTRIBUTES} {name}", attributes[name]
        return None

    outputs, explain, top = settings.inference_output, False, 3
    if found := get("output"):
        try:
            outputs = parse_output(found[1])
        except ValueError as e:
            raise RequestParameterError(f"{found[0]}={found[1]!r}: {e}") from None
    if found := get("explain"):
        value = found[1].strip().lower()
        if value not in _TRUE + _FALSE:
            raise RequestParameterError(f"{found[0]}={found[1]!r}: expected true or false")
        explain = value in _TRUE
    if found := get("top"):
        if not _SMALL_NUMBER.fullmatch(found[1].strip()) or not 1 <= int(found[1]) <= MAX_TOP:
            raise RequestParameterError(f"{found[0]}={found[1]!r}: expected a whole number 1-{MAX_TOP}")
        top = int(found[1])
    return outputs, explain, top


def invoke(
    scorer: Scorer,
    settings: ServeSettings,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    query: Mapping[str, str],
    custom_attributes: str | None,
) -> tuple[bytes, str]:
    """One /invocations request, transport-free: -> (response body, its media type); raises ``InputError``."""
    kind = negotiate(accept)
    outputs, explain, top = (
        request_options(query, custom_attributes, settings)
        if query or custom_attributes
        else (settings.inference_output, False, 3)
    )
    if explain and kind == CSV:
        raise NotAcceptableError(
            "explanations need Accept application/json or application/jsonlines, not CSV"
        )
    raw, n = decode_records(body, content_type, scorer.fields)
    if explain:
        probabilities, decisions, explanations = scorer.explain(raw, n, top)
    else:
        (probabilities, decisions), explanations = scorer.score(raw, n), None
    model = scorer.model
    return encode_predictions(
        probabilities, decisions, model.threshold, outputs, model.version, kind, explanations
    ), kind


def error_document(e: InputError) -> dict:
    return {"error": {"code": e.code, "message": str(e), "record": None, "field": None, **e.to_dict()}}


def _error_body(code: str, message: str, **extra) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "record": None, "field": None, **extra}}
    ).encode()


def create_app(model_or_error: LoadedModel | BaseException, settings: ServeSettings) -> Flask:
    """The Flask app serving ``model_or_error``; given the load error instead, /ping answers 503 with it."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    model = model_or_error if isinstance(model_or_error, LoadedModel) else None
    scorer = Scorer(model, settings.prediction_cache_size) if model else None
    unavailable = _error_body("model_unavailable", f"model not loaded: {model_or_error}")
    version_header = {MODEL_VERSION_HEADER: model.version} if model else {}
    ping_body = b'{"status": "ok", "model_version": "%s"}' % model.version.encode() if model else b""

    @app.get("/ping", provide_automatic_options=False)
    def ping():
        if model is None:
            return Response(unavailable, 503, mimetype=_JSON_MIME)
        return Response(ping_body, 200, mimetype=_JSON_MIME)

    @app.post("/invocations", provide_automatic_options=False)
    def invocations():  # with a model, _fast_invocations answers before Flask routes: this is the no-model answer
        return Response(unavailable, 503, mimetype=_JSON_MIME)

    @app.get("/execution-parameters", provide_automatic_options=False)
    def execution_parameters():
        return Response(
            json.dumps(
                {
                    "MaxConcurrentTransforms": settings.workers,
                    "BatchStrategy": "MultiRecord",
                    "MaxPayloadInMB": max(1, settings.max_body_bytes // (1024 * 1024)),
                }
            ),
            200,
            mimetype=_JSON_MIME,
        )

    @app.after_request
    def add_model_version(response: Response) -> Response:
        response.headers.update(version_header)
        return response

    @app.errorhandler(InputError)
    def input_error(e: InputError):
        return _json_response(error_document(e), status_for(e))

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = (e.name or "error").lower().replace(" ", "_")
        message = e.description or e.name
        if e.code == 413:
            return Response(_too_large(settings.max_body_bytes), 413, mimetype=_JSON_MIME)
        response = _json_response(
            {"error": {"code": code, "message": message, "record": None, "field": None}}, e.code or 500
        )
        if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
            response.headers["Allow"] = ", ".join(e.valid_methods)
        return response

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return Response(_INTERNAL, 500, mimetype=_JSON_MIME)

    if scorer is not None:
        app.wsgi_app = _fast_invocations(app.wsgi_app, scorer, settings)  # type: ignore[method-assign]
    return app


def _fast_invocations(flask_app, scorer: Scorer, settings: ServeSettings):
    """WSGI middleware answering ``POST /invocations`` without Flask's routing.

    Flask's request/response machinery costs ~0.2 ms of CPU per request, as much as the rest of a cached
    single-record prediction; at 3,000 req/s on 2 cores that is the difference. Same ``invoke``, same
    error table; other paths and methods go to Flask. It also owns the body limit, for chunked bodies too
    (werkzeug would silently cut a chunked body at the limit instead of refusing it).
    """
    version = scorer.model.version
    limit = settings.max_body_bytes

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/invocations" or environ.get("REQUEST_METHOD") != "POST":
            return flask_app(environ, start_response)
        length = environ.get("CONTENT_LENGTH", "")
        if length and not (length.isascii() and length.isdigit()):  # gunicorn refuses these before us
            out, kind, status = (
                _error_body("invalid_payload", f"bad Content-Length {length[:40]!r}"),
                _JSON_MIME,
                400,
            )
        elif length and int(length) > limit:
            out, kind, status = _too_large(limit), _JSON_MIME, 413
        else:
            body = environ["wsgi.input"].read(int(length) if length else limit + 1)
            if len(body) > limit:
                out, kind, status = _too_large(limit), _JSON_MIME, 413
            else:
                out, kind, status = _answer(scorer, settings, body, environ)
        start_response(
            _STATUS_LINES[status],
            [("Content-Type", kind), ("Content-Length", str(len(out))), (MODEL_VERSION_HEADER, version)],
        )
        return [out]

    return app


def _answer(scorer: Scorer, settings: ServeSettings, body: bytes, environ) -> tuple[bytes, str, int]:
    query = environ.get("QUERY_STRING")
    try:
        out, kind = invoke(
            scorer,
            settings,
            body,
            environ.get("CONTENT_TYPE"),
            environ.get("HTTP_ACCEPT"),
            dict(parse_qsl(query, keep_blank_values=True)) if query else {},
            environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
        )
        return out, kind, 200
    except InputError as e:
        return json.dumps(error_document(e)).encode(), _JSON_MIME, status_for(e)
    except Exception:
        log.exception("unhandled error serving POST /invocations")
        return _INTERNAL, _JSON_MIME, 500


def _too_large(limit: int) -> bytes:
    return _error_body("request_entity_too_large", f"request body over the limit of {limit} bytes")


_STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 400, 406, 413, 415, 500)}
_INTERNAL = json.dumps(
    {"error": {"code": "internal_error", "message": "internal server error", "record": None, "field": None}}
).encode()


def _json_response(doc: dict, status: int) -> Response:
    return Response(json.dumps(doc), status, mimetype=_JSON_MIME)


def load_or_error(model_dir) -> LoadedModel | BaseException:
    """The model in ``model_dir``, or the reason it cannot be served (for /ping to report)."""
    try:
        return load_model(model_dir)
    except ArtifactError as e:
        log.error("no model to serve: %s", e)
        return e
