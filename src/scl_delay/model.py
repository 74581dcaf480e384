"""XGBoost fitting and the serving-side Predictor. The only xgboost importer (metrics: metrics.py)."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from . import leaf_masks, tree_walk
from .features import FeatureSpec
from .hyperparameters import Hyperparameters

# xgboost imports scikit-learn whenever it is installed (for XGBClassifier, unused here) and with it ~400
# scipy modules: seconds of `serve`'s start-up. Hide it for that one import (xgboost then skips its
# scikit-learn wrappers); `train` imports scikit-learn itself, in metrics.py and baseline.py.
_HIDE_SKLEARN = "sklearn" not in sys.modules
if _HIDE_SKLEARN:
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` raises ImportError
try:
    import xgboost as xgb
finally:
    if _HIDE_SKLEARN:
        del sys.modules["sklearn"]

log = logging.getLogger(__name__)
Engine = TypeVar("Engine", leaf_masks.LeafMasks, tree_walk.TreeWalk)  # what Predictor scores with


@dataclass(frozen=True)
class Split:
    """Features and labels of one split."""

    X: np.ndarray
    y: np.ndarray


def _dmatrix(X: np.ndarray, spec: FeatureSpec, y: np.ndarray | None = None, weight=None) -> xgb.DMatrix:
    return xgb.DMatrix(
        X,
        label=y,
        weight=weight,
        feature_names=list(spec.names),
        feature_types=list(spec.types),
        enable_categorical="c" in spec.types,
        nthread=-1,
    )


def positive_weight(y: np.ndarray, hp: Hyperparameters) -> float:
    if hp.scale_pos_weight != "auto":
        return float(hp.scale_pos_weight)
    positives = int(y.sum())
    return (len(y) - positives) / max(positives, 1)


class _Progress(xgb.callback.TrainingCallback):
    """A line every ``every`` rounds with the validation metrics (no tabs: CloudWatch shows them as #011)."""

    def __init__(self, say: Callable[[str], None], every: int):
        self.say, self.every = say, every

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        if (epoch + 1) % self.every == 0:
            latest = " ".join(
                f"{data}-{name}={values[-1]:.5f}"
                for data, log in evals_log.items()
                for name, values in log.items()
            )
            self.say(f"round {epoch + 1}: {latest}")
        return False


def fit_booster(
    train: Split,
    validation: Split,
    spec: FeatureSpec,
    hp: Hyperparameters,
    say: Callable[[str], None] | None = None,
    every: int = 100,
) -> xgb.Booster:
    """Class-weighted gradient boosting with early stopping on validation log-loss; ``say`` gets a progress
    line every ``every`` rounds."""
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["aucpr", "logloss"],
        "tree_method": "hist",
        "eta": hp.eta,
        "max_depth": hp.max_depth,
        "min_child_weight": hp.min_child_weight,
        "subsample": hp.subsample,
        "colsample_bytree": hp.colsample_bytree,
        "lambda": hp.reg_lambda,
        "alpha": hp.reg_alpha,
        "max_cat_to_onehot": hp.max_cat_to_onehot,
        "scale_pos_weight": positive_weight(train.y, hp),
        "seed": hp.seed,
    }
    dtrain = _dmatrix(train.X, spec, train.y)
    dvalid = _dmatrix(validation.X, spec, validation.y)
    return xgb.train(
        params,
        dtrain,
        num_boost_round=hp.num_round,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=hp.early_stopping_rounds or None,
        verbose_eval=False,
        callbacks=[_Progress(say, every)] if say else None,
    )


def best_iterations(booster: xgb.Booster) -> tuple[int, int]:
    """``iteration_range`` up to the best iteration early stopping found; (0, 0) means every tree."""
    best = booster.attr("best_iteration")
    return (0, int(best) + 1) if best is not None else (0, 0)


def predict_proba(
    booster: xgb.Booster, X: np.ndarray, iteration_range: tuple[int, int] | None = None
) -> np.ndarray:
    """Delay probabilities, up to the best iteration. ``X`` comes from ``build_features`` in the model's own
    feature order (checked when the artifact loads), so XGBoost's per-call feature validation is skipped."""
    if X.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    return booster.inplace_predict(
        X, iteration_range=iteration_range or best_iterations(booster), validate_features=False
    )


def contributions(booster: xgb.Booster, X: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Per-feature SHAP contributions (log-odds), shape (rows, features + 1): the last column is the bias."""
    return booster.predict(_dmatrix(X, spec), pred_contribs=True, iteration_range=best_iterations(booster))


# Requests whose rows x trees x depth stay within this go through the NumPy tree walk when the leaf masks
# are off (trees of more than 64 leaves), the rest through XGBoost. Measured on 2 shared cores (README,
# "Benchmarks"): XGBoost costs 200-260 µs per call however few rows it gets (1.3 ms for 600 trees of depth
# 8), the walk 30-40 µs for one row; the walk stays faster up to ~50 rows of a 266x4 challenge model and
# ~1,000 of a 308x4 full one or a 600x8 one. This bound (32 rows of the default model) keeps a margin below
# the smallest.
TREE_WALK_MAX_VISITS = 40_000
TREE_WALK_MAX_ROWS = 256  # whatever the model: the walk holds rows x trees node ids at once
PROBE_ROWS = 512
PROBE_SINGLE_ROWS = 64  # of them, also scored one at a time


class Predictor:
    """A loaded booster with its feature spec and decision threshold; what `serve` calls.

    Requests are scored by an engine that reproduces XGBoost's bits on probe rows when the model loads, the
    one measured fastest for the default model (README, "Benchmarks"): one row by ``tree_walk`` (20-30 µs),
    more by ``leaf_masks`` (50-80 µs for two rows, 1.4-1.8 µs a row at 1,000; XGBoost 200-300 µs a call
    and 5-6 µs a row). An engine that cannot reproduce the model (leaf masks: trees of more than 64 leaves)
    is off, and the next one takes its requests; XGBoost alone gives explanations.
    """

    def __init__(self, booster: xgb.Booster, spec: FeatureSpec, threshold: float):
        booster.set_param({"nthread": 1})  # single rows gain nothing from threads; workers are processes
        self.booster, self.spec, self.threshold = booster, spec, threshold
        self.iteration_range = best_iterations(booster)  # once: each lookup is a call into libxgboost
        # each from the JSON model, read once: an unexpected document turns the engines off (KeyError, ...)
        model_json = functools.cache(self._model_json)
        self.masks = self._checked("leaf masks", lambda: leaf_masks.from_xgboost_json(*model_json()))
        self.walk = self._checked("tree walk", lambda: tree_walk.from_xgboost_json(*model_json()))
        self.walk_max_rows = self._walk_max_rows()
        spec.vocabulary_codes  # noqa: B018 -- built now, in gunicorn's master, shared by the workers
        if spec.feature_set == "full":
            spec.calendar_tables  # noqa: B018 -- built now, in gunicorn's master: the workers share the 2 MB

    @classmethod
    def from_bytes(cls, data: bytes, spec: FeatureSpec, threshold: float) -> Predictor:
        """From the booster file's content (XGBoost's own format; never a pickle)."""
        return cls(xgb.Booster(model_file=bytearray(data)), spec, threshold)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.walk is not None and X.shape[0] <= self.walk_max_rows:
            return self.walk.predict_proba(X)
        if self.masks is not None:
            return self.masks.predict_proba(X)
        return predict_proba(self.booster, X, self.iteration_range)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return contributions(self.booster, X, self.spec)

    def _model_json(self) -> tuple[dict, range | None]:
        """XGBoost's JSON model and the numbers of its trees up to the best iteration (None: all)."""
        doc = json.loads(self.booster.save_raw("json"))
        begin, end = self.iteration_range
        if not end:
            return doc, None
        indptr = doc["learner"]["gradient_booster"]["model"]["iteration_indptr"]
        return doc, range(indptr[begin], indptr[end])

    def _checked(self, name: str, build: Callable[[], Engine]) -> Engine | None:
        """The engine ``build`` makes, or None when it cannot reproduce this booster on probe rows (all at
        once and, for the first of them, one at a time: the one-row path is code of its own, whose tables
        are built here, before gunicorn forks)."""
        try:
            engine = build()
        except (KeyError, IndexError, TypeError, ValueError) as e:
            log.info("%s off (%s: %s): its requests go to another engine", name, type(e).__name__, e)
            return None
        probe = engine.probe_rows(PROBE_ROWS)
        expected = predict_proba(self.booster, probe, self.iteration_range)
        one_by_one = [engine.predict_proba(probe[i : i + 1]) for i in range(PROBE_SINGLE_ROWS)]
        if not (
            np.array_equal(engine.predict_proba(probe), expected)
            and np.array_equal(np.concatenate(one_by_one), expected[:PROBE_SINGLE_ROWS])
        ):
            log.warning("%s off: it does not reproduce XGBoost on probe rows", name)
            return None
        return engine

    def _walk_max_rows(self) -> int:
        """The most rows the walk takes: one when the leaf masks are on (as fast from two rows, and faster
        from a few dozen), else as many as keep it faster than XGBoost."""
        if self.walk is None:
            return 0
        if self.masks is not None:
            return 1
        visits_per_row = len(self.walk.roots) * max(self.walk.depth, 1)
        return min(TREE_WALK_MAX_VISITS // visits_per_row, TREE_WALK_MAX_ROWS)
