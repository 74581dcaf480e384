"""metrics.py (scikit-learn underneath) checked against the definitions computed the slow way, and the
threshold tuning rules on hand-made cases."""

import numpy as np
import pytest

from scl_delay.baseline import baseline_proba, fit_logistic_baseline
from scl_delay.metric_lines import METRIC_NAMES, METRIC_TITLES
from scl_delay.metrics import classification_metrics, pr_curve, tune_threshold


def brute_force_auc(y, p):
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def brute_force_ap(y, p):
    thresholds = np.unique(p)[::-1]
    ap, last_recall = 0.0, 0.0
    for t in thresholds:
        decided = p >= t
        recall = (decided & (y == 1)).sum() / y.sum()
        ap += (recall - last_recall) * (decided & (y == 1)).sum() / decided.sum()
        last_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_average_precision_match_their_definitions_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300) * 0.5 + 0.3 * y, 2)  # rounding makes ties
    m = classification_metrics(y, p, 0.5)
    assert m["roc_auc"] == pytest.approx(brute_force_auc(y, p))
    assert m["pr_auc"] == pytest.approx(brute_force_ap(y, p))


def test_pr_curve_runs_from_lowest_threshold_and_closes_at_precision_one():
    y = np.array([1, 0, 1, 0])
    precision, recall, thresholds = pr_curve(y, np.array([0.9, 0.8, 0.7, 0.1]))
    assert thresholds.tolist() == [0.1, 0.7, 0.8, 0.9]
    assert recall.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]
    assert precision.tolist() == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])


def test_threshold_reaches_target_recall_at_best_precision():
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.5, 0.4, 0.3, 0.1])
    threshold = tune_threshold(y, p, target_recall=0.75)
    assert threshold == 0.8
    m = classification_metrics(y, p, threshold)
    assert m["recall"] == 0.75 and m["precision"] == 0.75
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]


def test_threshold_takes_the_highest_of_tied_best_precisions():
    y = np.array([0, 1, 0, 1])
    # t=0.8: recall 0.5, precision 1/2; t=0.7: 0.5, 1/3; t=0.6: 1.0, 2/4 -- 0.8 and 0.6 tie at 1/2
    assert tune_threshold(y, np.array([0.9, 0.8, 0.7, 0.6]), target_recall=0.5) == 0.8


def test_threshold_falls_back_to_lowest_score_when_target_unreachable():
    y = np.array([1, 0, 1])
    assert tune_threshold(y, np.array([0.9, 0.5, 0.5]), target_recall=0.99) == 0.5


def test_majority_class_metrics_are_zero_recall_and_auc_one_half():
    y = np.array([0, 0, 1, 0, 1])
    m = classification_metrics(y, np.zeros(5), 0.5)
    assert (m["recall"], m["precision"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["roc_auc"] == 0.5 and m["pr_auc"] == pytest.approx(0.4)
    assert m["confusion_matrix"] == [[3, 0], [2, 0]]


def test_aucs_are_nan_when_only_one_class_is_present():
    m = classification_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"])


def test_baseline_is_class_balanced_logistic_regression():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(2000, 4)).astype(np.float32)
    y = (rng.random(2000) < 0.1 + 0.4 * X[:, 0]).astype(int)  # rare class, one informative feature
    baseline = fit_logistic_baseline(X, y, seed=1)
    assert baseline.class_weight == "balanced"
    p = baseline_proba(baseline, X)
    assert p.shape == (2000,) and p[X[:, 0] == 1].mean() > p[X[:, 0] == 0].mean()
    # balanced weights put the average prediction near one half, not near the 30% base rate
    assert 0.4 < p.mean() < 0.6


def test_every_metric_line_name_has_a_report_title():
    assert set(METRIC_NAMES) == set(METRIC_TITLES) and all(METRIC_TITLES.values())
