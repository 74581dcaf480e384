"""Training-side metric arithmetic, by scikit-learn (the reference implementations): PR curve, threshold
tuning, and the delayed-class metrics at a threshold. Pure. Only `train` imports it: the serving modules
import neither scikit-learn nor scipy (tests/unit/test_imports.py)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) of ``p >= t`` for every distinct score t, lowest t first; precision and
    recall carry scikit-learn's closing point (1, 0), one more than the thresholds."""
    return precision_recall_curve(y, p)


def tune_threshold(y: np.ndarray, p: np.ndarray, target_recall: float) -> float:
    """The threshold with the best precision among those reaching ``target_recall`` (the highest if tied)."""
    precision, recall, thresholds = pr_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # drop the closing point: it has no threshold
    reaching = np.flatnonzero(recall >= target_recall)
    if len(reaching) == 0:
        return float(thresholds[0])
    best = reaching[precision[reaching] == precision[reaching].max()].max()  # thresholds rise with the index
    return float(thresholds[best])


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Delayed-class metrics at ``threshold`` plus the threshold-free AUCs (NaN when y holds one class)."""
    decision = (p >= threshold).astype(np.int8)
    (tn, fp), (fn, tp) = confusion_matrix(y, decision, labels=[0, 1]).tolist()
    both = _both_classes(y)
    return {
        "recall": float(recall_score(y, decision, zero_division=0)),
        "precision": float(precision_score(y, decision, zero_division=0)),
        "f1": float(f1_score(y, decision, zero_division=0)),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "threshold": float(threshold),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "rows": int(len(y)),
        "positive_rate": float(np.mean(y)),
    }
