"""Records -> answers (predictions, explanations, per-record errors), transport-free: what a scoring request
runs.

``invoke`` is one /invocations request from body bytes to response bytes; ``Scorer`` scores decoded records;
``parse_options`` reads the per-request options. No Flask here: ``server.py`` adapts HTTP to these.

Per-request options, by precedence: query parameter, then ``X-Amzn-SageMaker-Custom-Attributes``
(``output=probability;explain=true``, how SageMaker's InvokeEndpoint ``CustomAttributes`` reach the
container), then the environment default:

- ``output``: ``probability``, ``decision``, ``both`` or ``probability,decision``
  (``SAGEMAKER_INFERENCE_OUTPUT``);
- ``explain``: ``true`` adds, per record, the features that pushed the delay log-odds up and down the most
  (XGBoost's own SHAP contributions), for at most ``MAX_EXPLAINED_RECORDS`` records; ``top``
  (1-20, default 3);
- ``unknown``: ``score`` (default) scores a value the model never saw as training does (as missing) and names
  the field in the record's ``unknown`` list; ``reject`` makes it an invalid record (``SCL_UNKNOWN_POLICY``);
- ``on_error``: ``record`` (default) answers an invalid record with an error entry in its place and scores the
  others; ``fail`` answers 400 listing the invalid records (``SCL_ON_ERROR``). A request of one record that
  is invalid is always a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import LoadedModel
from .codec import Answers, Explanation, Records, decode_records, negotiate
from .errors import InputError, InvalidRecordError, InvalidRecordsError, RequestParameterError
from .features import build_features
from .prediction_cache import PredictionCache, cache_key
from .schema import parse_columns
from .settings import ON_ERROR_CHOICES, UNKNOWN_CHOICES, ServeSettings, parse_output

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
INVALID_RECORDS_HEADER = "X-Invalid-Records"  # how many slots of a 200 answer hold an error entry
MAX_TOP = 20
# pred_contribs for 1,000 records of a `full` model took 0.7-2.9 s on a busy 2-core machine: well inside
# SageMaker's 60 s (a 6 MB request, ~60,000 records, took 85 s before the bound), and /ping stays fast.
MAX_EXPLAINED_RECORDS = 1000
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_SMALL_NUMBER = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class Options:
    outputs: tuple[str, ...]
    explain: bool = False
    top: int = 3
    unknown: str = "score"
    on_error: str = "record"

    @classmethod
    def defaults(cls, settings: ServeSettings) -> Options:
        return cls(settings.inference_output, unknown=settings.unknown, on_error=settings.on_error)


def parse_options(
    query: Mapping[str, str], custom_attributes: str | None, settings: ServeSettings
) -> Options:
    """Options from the query string, then custom attributes, then settings; ``RequestParameterError`` names
    the parameter and where it came from."""
    defaults = Options.defaults(settings)
    if not query and not custom_attributes:
        return defaults
    attributes = {}
    for part in (custom_attributes or "").split(";"):
        name, sep, value = part.partition("=")
        if sep:
            attributes[name.strip().lower()] = value.strip()

    def get(name: str) -> tuple[str, str] | None:
        if name in query:
            return f"query parameter {name}", query[name]
        if name in attributes:
            return f"{CUSTOM_ATTRIBUTES} {name}", attributes[name]
        return None

    outputs, explain, top = defaults.outputs, False, 3
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
    unknown = _choice(get("unknown"), UNKNOWN_CHOICES) or defaults.unknown
    on_error = _choice(get("on_error"), ON_ERROR_CHOICES) or defaults.on_error
    return Options(outputs, explain, top, unknown, on_error)


def _choice(found: tuple[str, str] | None, choices: tuple[str, ...]) -> str | None:
    if found is None:
        return None
    value = found[1].strip().lower()
    if value not in choices:
        raise RequestParameterError(f"{found[0]}={found[1]!r}: expected one of {', '.join(choices)}")
    return value


class Scorer:
    """Records -> ``Answers``: every valid record scored, every invalid one an error in its place.

    Predictions are remembered per worker process in a bounded FIFO cache keyed by the record's model
    inputs (the schema's fields, as sent): the model is deterministic and real traffic repeats flights,
    while one XGBoost call costs ~0.3-0.5 ms even for one row. ``cache_size=0`` turns it off.
    """

    def __init__(self, model: LoadedModel, cache_size: int):
        self.model, self.cache_size = model, cache_size
        self.fields = model.input_schema.read_fields
        self.cache = PredictionCache(cache_size)
        # p >= threshold as `train` compares them, in float32; a float32 probability and this threshold are
        # exact Python floats, so comparing those gives the same answer
        self.threshold = float(np.float32(model.threshold))

    def score(self, records: Records, options: Options) -> Answers:
        n, raw = records.count, records.columns
        found: list = [None] * n  # (probability, decision, unknown fields) per slot
        errors: dict[int, InputError] = dict(records.problems)
        todo = [i for i in range(n) if i not in errors]
        keys = None
        if self.cache.serves(n) and not options.explain:
            missing_column = [None] * n  # a CSV header may leave fields out
            cache, columns = self.cache, [raw.get(f, missing_column) for f in self.fields]
            keys = [cache_key(values) for values in zip(*columns)]
            for i in todo:
                hit: Any = cache.get(keys[i])  # (probability, decision, unknown fields)
                if hit is not None and not (hit[2] and options.unknown == "reject"):
                    found[i] = hit
            todo = [i for i in todo if found[i] is None]
        explanations = None
        if todo:
            p, unknown, X, bad = self._predict(raw, n, todo, options.unknown)
            errors.update(bad)
            scored = [i for i in todo if i not in bad]
            threshold = self.threshold
            for i, scored_hit in zip(scored, ((q, q >= threshold, u) for q, u in zip(p, unknown))):
                found[i] = scored_hit
                if keys is not None:
                    self.cache.put(keys[i], scored_hit)
            if options.explain:
                explanations = self._explanations(X, scored, n, options.top)
        if errors and (records.single or options.on_error == "fail"):
            raise _request_error(errors)
        model = self.model
        return Answers(
            [None if h is None else h[0] for h in found],
            [None if h is None else h[1] for h in found],
            [() if h is None else h[2] for h in found],
            errors,
            options.outputs,
            model.version,
            model.threshold,
            explanations,
            records.header is not None,
        )

    def _predict(self, raw: dict[str, list], n: int, rows: list[int], unknown_policy: str):
        """Parse, featurize and score the slots ``rows``: (probabilities, unknown fields, X) for the valid
        ones, plus {slot: error} for the invalid ones."""
        sub = raw if len(rows) == n else {f: [c[i] for i in rows] for f, c in raw.items()}
        columns, problems = parse_columns(sub, len(rows), self.model.input_schema, unknown_policy)
        bad: dict[int, InputError] = {}
        for e in problems:  # the first error of each record, named by its slot in the request
            bad.setdefault(rows[e.index], InvalidRecordError(rows[e.index], e.field, e.reason))
        if bad:
            columns = columns.subset(columns.valid)
        X = build_features(columns, self.model.spec)
        p = self.model.predictor.predict_proba(X).tolist()
        return p, columns.unknown.tolist(), X, bad

    def _explanations(self, X: np.ndarray, scored: list[int], n: int, top: int) -> list:
        if len(scored) > MAX_EXPLAINED_RECORDS:
            raise RequestParameterError(
                f"explain=true: at most {MAX_EXPLAINED_RECORDS} records per request, got {len(scored)}"
            )
        contributions = self.model.predictor.contributions(X)[:, :-1] if len(X) else X
        names = self.model.spec.names
        explanations: list = [None] * n
        for i, row in zip(scored, contributions):
            order = np.argsort(-row, kind="stable")
            up = tuple((names[j], float(row[j])) for j in order[:top] if row[j] > 0)
            down = tuple((names[j], float(row[j])) for j in order[::-1][:top] if row[j] < 0)
            explanations[i] = Explanation(up, down)
        return explanations


def _request_error(errors: dict[int, InputError]) -> InputError:
    ordered = [errors[i] for i in sorted(errors)]
    return ordered[0] if len(ordered) == 1 else InvalidRecordsError(ordered)


def invoke(
    scorer: Scorer, body: bytes, content_type: str | None, accept: str | None, options: Options
) -> tuple[bytes, str, int]:
    """One /invocations request: -> (response body, its media type, invalid records); raises
    ``InputError``."""
    encoder = negotiate(accept, options.explain)
    records = decode_records(body, content_type, scorer.fields)
    if options.explain and records.count > MAX_EXPLAINED_RECORDS:
        raise RequestParameterError(
            f"explain=true: at most {MAX_EXPLAINED_RECORDS} records per request, got {records.count}"
        )
    answers = scorer.score(records, options)
    return encoder.encode(answers), encoder.media_type, len(answers.errors)
