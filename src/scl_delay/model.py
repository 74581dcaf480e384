"""XGBoost fitting, threshold tuning, metrics and the serving-side Predictor. The only xgboost importer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from .features import FeatureSpec
from .hyperparameters import Hyperparameters


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


NEARLY_ALL = 0.9  # a threshold flagging this share of the flights or more decides nothing


def tune_threshold(y: np.ndarray, p: np.ndarray, target_recall: float) -> float:
    """The threshold with the best precision among those reaching ``target_recall`` (highest if tied).

    A score with few levels can reach the target only by flagging nearly every flight (``challenge`` on
    ``split=time``: recall 0.993, 94.6% flagged, for a 0.70 target). Then the level whose recall is nearest
    the target among those flagging less than ``NEARLY_ALL`` of the rows is chosen; the caller reports the
    recall it reaches.
    """
    precision, recall, thresholds = precision_recall_curve(y, p)
    flagged = np.searchsorted(np.sort(-p), -thresholds, side="right") / len(p)  # share with p >= threshold
    reaching = np.flatnonzero(recall >= target_recall)
    if len(reaching):
        best = reaching[np.argmax(precision[reaching])]  # argmax takes the first: the highest threshold
        if flagged[best] < NEARLY_ALL:
            return float(thresholds[best])
    usable = np.flatnonzero(flagged < NEARLY_ALL)
    if len(usable) == 0:
        return float(thresholds[-1])
    return float(thresholds[usable[np.argmin(np.abs(recall[usable] - target_recall))]])


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


class Predictor:
    """A loaded booster with its feature spec and decision threshold; what `serve` calls."""

    def __init__(self, booster: xgb.Booster, spec: FeatureSpec, threshold: float):
        booster.set_param({"nthread": 1})  # single rows gain nothing from threads; workers are processes
        self.booster, self.spec, self.threshold = booster, spec, threshold
        self.iteration_range = best_iterations(booster)  # once: each lookup is a call into libxgboost

    @classmethod
    def from_bytes(cls, data: bytes, spec: FeatureSpec, threshold: float) -> Predictor:
        """From the booster file's content (XGBoost's own format; never a pickle)."""
        return cls(xgb.Booster(model_file=bytearray(data)), spec, threshold)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.booster, X, self.iteration_range)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return contributions(self.booster, X, self.spec)
