"""A real `train` run's metrics.json carries the sampled PR curves and renders as the PR comment's figures."""

from __future__ import annotations

import json

from scl_delay.report import PR_CURVE_POINTS, inline_figures


def test_a_trained_artifact_renders_its_curve_and_confusion_matrix_inline(model_dir):
    metrics = json.loads((model_dir / "metrics.json").read_text())
    curve = metrics["pr_curve"]
    assert list(curve["precision"]) == ["model", "logistic regression"]
    assert all(len(values) == PR_CURVE_POINTS for values in curve["precision"].values())
    text = inline_figures(metrics)
    assert text.startswith("```mermaid\nxychart-beta\n")
    assert "Lines in order: 1. model, 2. logistic regression." in text
    (tn, fp), (fn, tp) = metrics["test"]["confusion_matrix"]
    assert f"| delayed | {fn} | {tp} | {fn + tp} |" in text
