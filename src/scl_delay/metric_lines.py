"""The metric lines `train` prints, the SageMaker ``MetricDefinitions`` that scrape them, and the metrics'
titles in the reports: one home for all three.

    metric validation:recall=0.712000
    metric test:true_positives=931.000000

One metric per line, no tabs (CloudWatch shows them as ``#011``), and a regex capturing a number (SageMaker
drops non-numeric captures). Pure: the launcher imports it without pandas or xgboost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

METRIC_LINE = "metric {name}={value:.6f}"
METRIC_REGEX = r"metric {name}=([-+0-9.eE]+)"
# name -> title in both reports (report.md and the PR comment), in their row order
METRIC_TITLES = {
    "recall": "Recall (delayed)",
    "precision": "Precision (delayed)",
    "f1": "F1 (delayed)",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "threshold": "Decision threshold",
}
METRIC_NAMES = tuple(METRIC_TITLES)
HIGHER_IS_BETTER = frozenset({"recall", "precision", "f1", "roc_auc", "pr_auc"})
# split in the line -> where its metrics sit in metrics.json
METRIC_SOURCES = {
    "validation": ("validation",),
    "test": ("test",),
    "baseline_logreg": ("baselines", "logistic_regression"),
    "baseline_majority": ("baselines", "majority"),
}
COUNT_NAMES = (
    "true_negatives",
    "false_positives",
    "false_negatives",
    "true_positives",
)  # test confusion matrix


def metric_names() -> list[str]:
    return [f"{split}:{name}" for split in METRIC_SOURCES for name in METRIC_NAMES] + [
        f"test:{name}" for name in COUNT_NAMES
    ]


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` (at most 40) matching the lines `train` prints."""
    return [{"Name": name, "Regex": METRIC_REGEX.format(name=re.escape(name))} for name in metric_names()]


def metric_values(metrics: Mapping) -> dict[str, float]:
    """Every metric line's value, from the metrics document (``metrics.json``); non-finite ones left out."""
    out = {}
    for split, path in METRIC_SOURCES.items():
        node = metrics
        for key in path:
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        for name in METRIC_NAMES:
            value = node.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out[f"{split}:{name}"] = float(value)
    confusion = metrics.get("test", {}).get("confusion_matrix")
    if confusion:
        (tn, fp), (fn, tp) = confusion
        out.update({f"test:{name}": float(v) for name, v in zip(COUNT_NAMES, (tn, fp, fn, tp))})
    return out


def metric_lines(metrics: Mapping) -> list[str]:
    return [METRIC_LINE.format(name=name, value=value) for name, value in metric_values(metrics).items()]
