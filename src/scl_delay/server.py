"""The HTTP adapter: SageMaker's /ping, /invocations and /execution-parameters, plus the earlier delay
service's routes (/predict_delay_probability, /model_status). The sole Flask importer.

Scoring lives in ``scoring.py`` (transport-free), formats in ``codec.py``; here are the routes, the one
error -> status table and the one way an error body is built (``errors.error_document``). SageMaker routes
only /ping and /invocations to the container: the other routes are harmless there and serve drop-in use on
Cloud Run, ECS or anywhere ``PORT`` is set.

Paths are normalised before routing (``//invocations`` is ``/invocations``: a base URL ending in ``/``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qsl

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .artifact import BOOSTER_FILE, LoadedModel, load_model
from .codec import JSON, decode_records, legacy_body
from .errors import (
    ArtifactError,
    InputError,
    InvalidRecordError,
    InvalidRecordsError,
    NotAcceptableError,
    PayloadError,
    RequestParameterError,
    UnsupportedMediaTypeError,
    error_document,
)
from .scoring import INVALID_RECORDS_HEADER, Options, Scorer, invoke, parse_options
from .settings import ServeSettings

log = logging.getLogger(__name__)

_STATUS: dict[type[InputError], int] = {
    InvalidRecordError: 400,
    InvalidRecordsError: 400,
    PayloadError: 400,
    RequestParameterError: 400,
    UnsupportedMediaTypeError: 415,
    NotAcceptableError: 406,
}
MODEL_VERSION_HEADER = "X-Model-Version"
INVOCATIONS = "/invocations"
PREDICT_DELAY = "/predict_delay_probability"  # the earlier service's route (issue 16)
_SLASHES = re.compile(r"//+")


def status_for(error: InputError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 400


def error_body(code: str, message: str, **extra) -> bytes:
    return orjson.dumps(error_document(code, message, **extra))


_INTERNAL = error_body("internal_error", "internal server error")


def too_large(limit: int) -> bytes:
    return error_body("request_entity_too_large", f"request body over the limit of {limit} bytes")


def execution_parameters(settings: ServeSettings) -> dict:
    """What Batch Transform may ask for (``ServeSettings.transform_limits``: within AWS's limits)."""
    concurrency, payload_mb = settings.transform_limits()
    return {
        "MaxConcurrentTransforms": concurrency,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": payload_mb,
    }


def model_status(model: LoadedModel) -> dict:
    """The model for the earlier service's ``GET /model_status``: type, version, input fields, an example."""
    schema, metadata = model.input_schema, model.metadata
    airlines = schema.categories.get("OPERA", ("Sky Airline",))
    airline = "Sky Airline" if "Sky Airline" in airlines else airlines[0]
    if schema.city_airports:
        city = "Calama" if "Calama" in schema.city_airports else next(iter(schema.city_airports))
        example = {"OPERA": airline, "SIGLADES": city, "FECHA_PROGRAMADA": "2017-11-27 13:00:00"}
    else:
        destinations = schema.categories.get("Des-I", ("SCCF",))
        example = {"Fecha-I": "2017-11-27 13:00:00", "OPERA": airline, "Des-I": destinations[0]}
    return {
        "model_type": "XGBoost gradient-boosted trees, binary:logistic",
        "model_file": BOOSTER_FILE,
        "model_version": model.version,
        "package_version": metadata.get("package_version"),
        "feature_set": model.spec.feature_set,
        "threshold": model.threshold,
        "target_recall": metadata.get("target_recall"),
        "input_variables": list(schema.fields),
        "required": [list(group) for group in schema.required],
        "input_example": example,
    }


def predict_delay(
    scorer: Scorer, body: bytes, content_type: str | None, accept: str | None, options: Options
):
    """The earlier service's ``POST /predict_delay_probability``: same scorer and errors, its JSON answer
    shape (whatever ``Accept`` says, as that service did)."""
    records = decode_records(body, content_type, scorer.fields)
    answers = scorer.score(records, options)
    return legacy_body(answers, single=not records.listed), JSON, len(answers.errors)


# path -> handler(scorer, body, content type, accept, options) -> (body, media type, invalid records)
_HANDLERS: dict[str, Callable] = {INVOCATIONS: invoke, PREDICT_DELAY: predict_delay}


def create_app(model_or_error: LoadedModel | BaseException, settings: ServeSettings) -> Flask:
    """The Flask app serving ``model_or_error``; given the load error instead, /ping answers 503 with it."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    model = model_or_error if isinstance(model_or_error, LoadedModel) else None
    scorer = Scorer(model, settings.prediction_cache_size) if model else None
    version_header = {MODEL_VERSION_HEADER: model.version} if model else {}
    unavailable_body = b""
    if model is None:  # built only when loading failed; it carries the reason, never an object's repr
        reason = str(model_or_error) or type(model_or_error).__name__
        unavailable_body = error_body("model_unavailable", f"model not loaded: {reason}")
    ping_body = orjson.dumps({"status": "ok", "model_version": model.version}) if model else b""

    def no_model():
        return Response(unavailable_body, 503, mimetype=JSON)

    @app.get("/ping", provide_automatic_options=False)
    def ping():
        return no_model() if model is None else Response(ping_body, 200, mimetype=JSON)

    # With a model, _scoring_routes answers these before Flask routes them: here only the no-model answer.
    app.add_url_rule(INVOCATIONS, "invocations", no_model, methods=["POST"], provide_automatic_options=False)
    app.add_url_rule(
        PREDICT_DELAY, "predict_delay", no_model, methods=["POST"], provide_automatic_options=False
    )

    @app.get("/model_status", provide_automatic_options=False)
    def status():
        return (
            no_model() if model is None else Response(orjson.dumps(model_status(model)), 200, mimetype=JSON)
        )

    @app.get("/execution-parameters", provide_automatic_options=False)
    def parameters():
        return Response(orjson.dumps(execution_parameters(settings)), 200, mimetype=JSON)

    @app.after_request
    def add_model_version(response: Response) -> Response:
        response.headers.update(version_header)
        return response

    @app.errorhandler(InputError)
    def input_error(e: InputError):
        return Response(orjson.dumps(e.document()), status_for(e), mimetype=JSON)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if e.code == 413 and settings.max_body_bytes is not None:
            return Response(too_large(settings.max_body_bytes), 413, mimetype=JSON)
        code = (e.name or "error").lower().replace(" ", "_")
        response = Response(error_body(code, e.description or e.name), e.code or 500, mimetype=JSON)
        methods = getattr(e, "valid_methods", None)
        if e.code == 405 and methods:
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.errorhandler(Exception)
    def internal_error(e: Exception):
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return Response(_INTERNAL, 500, mimetype=JSON)

    if scorer is not None:
        app.wsgi_app = _scoring_routes(app.wsgi_app, scorer, settings)  # type: ignore[method-assign]
    app.wsgi_app = _normalized_paths(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _normalized_paths(wsgi_app):
    """``//invocations`` and ``/invocations/`` are ``/invocations`` (a base URL ending in ``/`` doubles
    it)."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if "//" in path or (path.endswith("/") and path != "/"):
            environ["PATH_INFO"] = _SLASHES.sub("/", path).rstrip("/") or "/"
        return wsgi_app(environ, start_response)

    return app


def _scoring_routes(flask_app, scorer: Scorer, settings: ServeSettings):
    """WSGI middleware answering the scoring POSTs without Flask's routing.

    Flask's request/response machinery costs ~0.2 ms of CPU per request, as much as the rest of a cached
    single-record prediction; at 3,000 req/s on 2 cores that is the difference. Same handlers, same error
    table; other paths and methods go to Flask. It also owns the body limit, for chunked bodies too
    (werkzeug would silently cut a chunked body at the limit instead of refusing it).
    """
    version = scorer.model.version
    limit = settings.max_body_bytes

    def app(environ, start_response):
        handler = _HANDLERS.get(environ.get("PATH_INFO"))
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return flask_app(environ, start_response)
        headers = [(MODEL_VERSION_HEADER, version)]
        length = environ.get("CONTENT_LENGTH", "")
        if length and not (length.isascii() and length.isdigit()):  # gunicorn refuses these before us
            out, kind, status = (
                error_body("invalid_payload", f"bad Content-Length {length[:40]!r}"),
                JSON,
                400,
            )
        elif length and limit is not None and int(length) > limit:
            out, kind, status = too_large(limit), JSON, 413
        else:
            stream = environ["wsgi.input"]
            body = stream.read(int(length)) if length else stream.read(-1 if limit is None else limit + 1)
            if limit is not None and len(body) > limit:
                out, kind, status = too_large(limit), JSON, 413
            else:
                out, kind, status, invalid = _answer(handler, scorer, settings, body, environ)
                if status == 200:
                    headers.append((INVALID_RECORDS_HEADER, str(invalid)))
        headers += [("Content-Type", kind), ("Content-Length", str(len(out)))]
        start_response(_STATUS_LINES[status], headers)
        return [out]

    return app


def _answer(handler, scorer: Scorer, settings: ServeSettings, body: bytes, environ):
    query = environ.get("QUERY_STRING")
    try:
        options = parse_options(
            dict(parse_qsl(query, keep_blank_values=True)) if query else {},
            environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
            settings,
        )
        out, kind, invalid = handler(
            scorer, body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"), options
        )
        return out, kind, 200, invalid
    except InputError as e:
        return orjson.dumps(e.document()), JSON, status_for(e), 0
    except Exception:
        log.exception("unhandled error serving POST %s", environ.get("PATH_INFO"))
        return _INTERNAL, JSON, 500, 0


_STATUS_LINES = {code: f"{code} {HTTPStatus(code).phrase}" for code in (200, 400, 406, 413, 415, 500)}


def load_or_error(model_dir) -> LoadedModel | BaseException:
    """The model in ``model_dir``, or the reason it cannot be served (for /ping to report)."""
    try:
        return load_model(model_dir)
    except ArtifactError as e:
        log.error("no model to serve: %s", e)
        return e
