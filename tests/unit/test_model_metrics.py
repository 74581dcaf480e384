"""Metrics and threshold tuning, checked against their definitions computed the slow way."""

import numpy as np
import pytest

from scl_delay.model import (
    average_precision,
    classification_metrics,
    precision_recall_curve,
    roc_auc,
    tune_threshold,
)


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
    assert roc_auc(y, p) == pytest.approx(brute_force_auc(y, p))
    assert average_precision(y, p) == pytest.approx(brute_force_ap(y, p))


def test_precision_recall_curve_is_ordered_from_highest_threshold():
    y = np.array([1, 0, 1, 0])
    precision, recall, thresholds = precision_recall_curve(y, np.array([0.9, 0.8, 0.7, 0.1]))
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.1]
    assert recall.tolist() == [0.5, 0.5, 1.0, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5])


def test_threshold_reaches_target_recall_at_best_precision():
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    p = np.array([0.95, 0.9, 0.85, 0.8, 0.5, 0.4, 0.3, 0.1])
    threshold = tune_threshold(y, p, target_recall=0.75)
    assert threshold == 0.8
    m = classification_metrics(y, p, threshold)
    assert m["recall"] == 0.75 and m["precision"] == 0.75
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]


def test_threshold_does_not_flag_everything_to_reach_the_target():
    y = np.array([1, 0, 1])  # only flagging every row reaches 0.99: the nearest level below is taken
    assert tune_threshold(y, np.array([0.9, 0.5, 0.5]), target_recall=0.99) == 0.9
