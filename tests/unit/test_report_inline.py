"""The PR comment's inline figures: the sampled precision-recall curve, its Mermaid chart, the confusion
table.

The Mermaid text is checked against the xychart-beta grammar as Mermaid documents it (mermaid.js.org,
"XY Chart"): no renderer runs here, so a test passing means the text has the documented shape, not that
GitHub drew it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from scl_delay.report import (
    PR_CURVE_POINTS,
    confusion_matrix_table,
    inline_figures,
    pr_curve_mermaid,
    sample_pr_curves,
)

NUMBER = r"-?\d+(?:\.\d+)?"
MERMAID_LINE = [
    re.compile(r"^```mermaid$"),
    re.compile(r"^xychart-beta$"),
    re.compile(r'^    title "[^"]+"$'),
    re.compile(r'^    x-axis "[^"]+" \[("[^"]+", )*"[^"]+"\]$'),
    re.compile(rf'^    y-axis "[^"]+" {NUMBER} --> {NUMBER}$'),
]
DATA_LINE = re.compile(rf"^    line \[({NUMBER}, )*{NUMBER}\]$")


def _pr_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) of ``p >= t`` for every distinct score t, plus scikit-learn's closing point
    (recall 0, precision 1), as the training's PR curve carries it."""
    thresholds = np.unique(p)
    recall = np.array([((p >= t) & (y == 1)).sum() / y.sum() for t in thresholds])
    precision = np.array([((p >= t) & (y == 1)).sum() / (p >= t).sum() for t in thresholds])
    return np.r_[recall, 0.0], np.r_[precision, 1.0]


def _curves(seed: int = 3, rows: int = 1500):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(int)
    good = np.round(np.clip(0.35 * y + rng.random(rows) * 0.7, 0, 1), 3)
    weak = np.round(np.clip(0.1 * y + rng.random(rows) * 0.9, 0, 1), 3)
    scores = {"model": good, "logistic regression": weak}
    return y, scores, {name: _pr_points(y, p) for name, p in scores.items()}


def test_sampled_precision_is_the_best_precision_at_that_recall_or_more():
    y, scores, curves = _curves()
    sampled = sample_pr_curves(curves)
    assert (
        len(sampled["recall"]) == PR_CURVE_POINTS and sampled["recall"][0] == 0 and sampled["recall"][-1] == 1
    )
    for name, p in scores.items():
        for level, value in zip(sampled["recall"], sampled["precision"][name]):
            # brute force over every threshold: precision and recall of p >= t
            best = 0.0
            for t in np.unique(p):
                decided = p >= t
                recall = (decided & (y == 1)).sum() / y.sum()
                if recall >= level - 1e-12:
                    best = max(best, (decided & (y == 1)).sum() / decided.sum())
            assert value == pytest.approx(best, abs=1e-4), (name, level)
        values = sampled["precision"][name]
        assert all(a >= b for a, b in zip(values, values[1:])), (
            "interpolated precision never rises with recall"
        )


def test_the_mermaid_chart_has_the_documented_xychart_shape_and_one_line_per_curve():
    _, _, curves = _curves()
    sampled = sample_pr_curves(curves)
    text = pr_curve_mermaid(sampled)
    lines = text.splitlines()
    for pattern, line in zip(MERMAID_LINE, lines):
        assert pattern.match(line), line
    data = lines[len(MERMAID_LINE) : -1]
    assert lines[-1] == "```" and len(data) == 2
    labels = re.findall(r'"(\d\.\d\d)"', lines[3])
    for line in data:
        assert DATA_LINE.match(line), line
        values = [float(v) for v in line[line.index("[") + 1 : -1].split(", ")]
        assert len(values) == len(labels) == PR_CURVE_POINTS
        assert all(0 <= v <= 1 for v in values)


def test_the_confusion_table_keeps_rows_actual_and_columns_predicted():
    table = confusion_matrix_table([[50, 10], [3, 7]])
    assert "| on time | 50 | 10 | 60 |" in table and "| delayed | 3 | 7 | 10 |" in table
    assert table.splitlines()[1] == "|---|---:|---:|---:|"


def test_inline_figures_is_empty_for_a_document_without_curve_or_matrix():
    assert inline_figures({"test": {"recall": 0.7}}) == ""


def test_the_pr_comment_shows_the_figures_inline_outside_any_collapsed_block():
    from scl_delay.aws.report_pr import render_report

    _, _, curves = _curves()
    metrics = {"pr_curve": sample_pr_curves(curves), "test": {"confusion_matrix": [[50, 10], [3, 7]]}}
    result = {
        "job_name": "scl-delay-pr7-aaaaaaaa-20261203-000000",
        "status": "Completed",
        "commit": "a" * 40,
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/scl-delay@sha256:" + "0" * 64,
        "final_metrics": {"test:recall": 0.7},
        "hyperparameters": {},
        "model_artifact": "s3://bucket/training/pr-7/job/output/model.tar.gz",
    }
    comment = render_report(result, None, {}, "main", None, "us-east-1", metrics)
    section = comment.index("### Precision-recall and confusion matrix (test split)")
    assert comment.index("```mermaid", section) > section
    assert "| delayed | 3 | 7 | 10 |" in comment
    assert "<details>" not in comment[section : comment.index("| delayed | 3 | 7 | 10 |")]
    without = render_report(result, None, {}, "main", None, "us-east-1", None)
    assert "```mermaid" not in without
