"""The baseline the original challenge notebook had: class-balanced logistic regression on the one-hot
``challenge`` features, by scikit-learn. Only `train` imports it."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit_logistic_baseline(X: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    """``LogisticRegression(class_weight="balanced")``; max_iter raised so lbfgs converges on 60k+ rows."""
    return LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed).fit(X, y)


def baseline_proba(baseline: LogisticRegression, X: np.ndarray) -> np.ndarray:
    """Delay probabilities of the baseline."""
    return baseline.predict_proba(X)[:, 1]
