"""Raw columns -> predictions (and explanations), transport-free: what /invocations runs per request."""

from __future__ import annotations

import numpy as np

from .artifact import LoadedModel
from .codec import Explanation
from .errors import InvalidRecordError
from .features import build_features
from .prediction_cache import PredictionCache, cache_key
from .schema import parse_columns


class Scorer:
    """Raw columns -> (probabilities, decisions), all-or-nothing on invalid records.

    Predictions are remembered per worker process in a bounded FIFO cache keyed by the record's model
    inputs (the schema's fields, as sent): the model is deterministic and real traffic repeats flights,
    while one XGBoost call costs ~0.3-0.5 ms even for one row. ``cache_size=0`` turns it off.
    """

    def __init__(self, model: LoadedModel, cache_size: int):
        self.model, self.cache_size = model, cache_size
        self.fields = model.input_schema.fields
        self.cache = PredictionCache(cache_size)

    def _predict(self, raw: dict[str, list], n: int, index: list[int] | None = None):
        columns, errors = parse_columns(raw, n, self.model.input_schema)
        if errors:
            e = errors[0]
            raise InvalidRecordError(e.index if index is None else index[e.index], e.field, e.reason)
        X = build_features(columns, self.model.spec)
        p = self.model.predictor.predict_proba(X)
        return X, p, p >= self.model.threshold  # numpy's float32 comparison, exactly as `train` decides

    def score(self, raw: dict[str, list], n: int) -> tuple[list[float], list[bool]]:
        if not self.cache_size:
            _, p, d = self._predict(raw, n)
            return p.tolist(), d.tolist()
        # a CSV header may leave fields out: the codec omits them; schema.py names the missing required ones
        missing_column = [None] * n
        cache, columns = self.cache, [raw.get(f, missing_column) for f in self.fields]
        keys = [cache_key(values) for values in zip(*columns)]
        found: list = [cache.get(k) for k in keys]  # every None is filled below
        missing = [i for i, hit in enumerate(found) if hit is None]
        if missing:
            sub = (
                raw
                if len(missing) == n
                else {f: [c[i] for i in missing] for f, c in zip(self.fields, columns)}
            )
            _, p, d = self._predict(sub, len(missing), None if len(missing) == n else missing)
            for i, hit in zip(missing, zip(p.tolist(), d.tolist())):
                found[i] = hit
                cache.put(keys[i], hit)
        return [h[0] for h in found], [h[1] for h in found]

    def explain(
        self, raw: dict[str, list], n: int, top: int
    ) -> tuple[list[float], list[bool], list[Explanation]]:
        X, p, d = self._predict(raw, n)
        contributions = self.model.predictor.contributions(X)[:, :-1]  # the last column is the bias
        names = self.model.spec.names
        explanations = []
        for row in contributions:
            order = np.argsort(-row, kind="stable")
            up = tuple((names[j], float(row[j])) for j in order[:top] if row[j] > 0)
            down = tuple((names[j], float(row[j])) for j in order[::-1][:top] if row[j] < 0)
            explanations.append(Explanation(up, down))
        return p.tolist(), d.tolist(), explanations
