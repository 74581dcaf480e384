"""XGBoost fitting, threshold tuning, metrics and the serving-side Predictor. The only xgboost importer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from . import tree_walk
from .features import FeatureSpec
from .hyperparameters import Hyperparameters

log = logging.getLogger(__name__)


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


def fit_booster(train: Split, validation: Split, spec: FeatureSpec, hp: Hyperparameters) -> xgb.Booster:
    """Class-weighted gradient boosting with early stopping on validation log-loss."""
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
    )


def fit_logistic_baseline(train: Split, spec: FeatureSpec, hp: Hyperparameters) -> xgb.Booster:
    """Class-balanced L2 logistic regression (XGBoost's linear booster) on the given features."""
    params = {
        "objective": "binary:logistic",
        "booster": "gblinear",
        "updater": "coord_descent",
        "lambda": 1.0 / len(train.y),
        "alpha": 0.0,
        "eta": 1.0,
        "scale_pos_weight": positive_weight(train.y, hp),
        "seed": hp.seed,
    }
    return xgb.train(params, _dmatrix(train.X, spec, train.y), num_boost_round=200, verbose_eval=False)


def predict_linear(booster: xgb.Booster, X: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Probabilities of the linear baseline (gblinear has no in-place prediction)."""
    return booster.predict(_dmatrix(X, spec))


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


# ---- metrics: numpy, so the image needs no scikit-learn (tests check them against it) ----


def precision_recall_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of ``p >= t`` for every distinct score t, highest t first."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    true_pos = np.cumsum(y_sorted)[last_of_each]
    predicted_pos = last_of_each + 1
    precision = true_pos / predicted_pos
    recall = true_pos / max(int(y.sum()), 1)
    return precision, recall, p_sorted[last_of_each]


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """PR-AUC as average precision: sum of precision times recall gained, at each threshold."""
    precision, recall, _ = precision_recall_curve(y, p)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties."""
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def tune_threshold(y: np.ndarray, p: np.ndarray, target_recall: float) -> float:
    """The threshold with the best precision among those reaching ``target_recall`` (highest if tied)."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    reaching = np.flatnonzero(recall >= target_recall)
    if len(reaching) == 0:
        return float(thresholds[-1])
    best = reaching[np.argmax(precision[reaching])]  # argmax takes the first: the highest threshold
    return float(thresholds[best])


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Delayed-class metrics at ``threshold`` plus the threshold-free AUCs."""
    decision = p >= threshold
    tp = int(np.sum(decision & (y == 1)))
    fp = int(np.sum(decision & (y == 0)))
    fn = int(np.sum(~decision & (y == 1)))
    tn = int(np.sum(~decision & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "threshold": float(threshold),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "rows": int(len(y)),
        "positive_rate": float(np.mean(y)),
    }


# Requests whose rows x trees x depth stay within this go through the NumPy tree walk, the rest through
# XGBoost. Measured on 2 shared cores (README, "Serving performance"): XGBoost costs 200-260 µs per call
# however few rows it gets (1.3 ms for 600 trees of depth 8), the walk 30-40 µs for one row; the walk
# stays faster up to ~50 rows of a 266x4 challenge model and ~1,000 of a 308x4 full one or a 600x8
# one. This bound (32 rows of the default model) keeps a margin below the smallest of those.
TREE_WALK_MAX_VISITS = 40_000
TREE_WALK_MAX_ROWS = 256  # whatever the model: the walk holds rows x trees node ids at once
TREE_WALK_PROBE_ROWS = 512


class Predictor:
    """A loaded booster with its feature spec and decision threshold; what `serve` calls.

    Small requests are scored by ``tree_walk`` (same bits as XGBoost, checked on probe rows when the model
    loads; without that match every request goes to XGBoost), large ones by XGBoost.
    """

    def __init__(self, booster: xgb.Booster, spec: FeatureSpec, threshold: float):
        booster.set_param({"nthread": 1})  # single rows gain nothing from threads; workers are processes
        self.booster, self.spec, self.threshold = booster, spec, threshold
        self.iteration_range = best_iterations(booster)  # once: each lookup is a call into libxgboost
        self.walk, self.walk_max_rows = self._checked_tree_walk()

    @classmethod
    def from_bytes(cls, data: bytes, spec: FeatureSpec, threshold: float) -> Predictor:
        """From the booster file's content (XGBoost's own format; never a pickle)."""
        return cls(xgb.Booster(model_file=bytearray(data)), spec, threshold)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] <= self.walk_max_rows:
            return self.walk.predict_proba(X)
        return predict_proba(self.booster, X, self.iteration_range)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return contributions(self.booster, X, self.spec)

    def _checked_tree_walk(self) -> tuple[tree_walk.TreeWalk | None, int]:
        """The walk and the most rows it takes, or (None, 0) when it cannot reproduce this booster."""
        try:
            doc = json.loads(self.booster.save_raw("json"))
            begin, end = self.iteration_range
            if end:
                indptr = doc["learner"]["gradient_booster"]["model"]["iteration_indptr"]
                walk = tree_walk.from_xgboost_json(doc, range(indptr[begin], indptr[end]))
            else:
                walk = tree_walk.from_xgboost_json(doc)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            log.info("tree walk off (%s: %s): every request goes to XGBoost", type(e).__name__, e)
            return None, 0
        probe = walk.probe_rows(TREE_WALK_PROBE_ROWS)
        if not np.array_equal(
            walk.predict_proba(probe), predict_proba(self.booster, probe, self.iteration_range)
        ):
            log.warning("tree walk off: it does not reproduce XGBoost on probe rows")
            return None, 0
        visits_per_row = len(walk.roots) * max(walk.depth, 1)
        return walk, min(TREE_WALK_MAX_VISITS // visits_per_row, TREE_WALK_MAX_ROWS)
