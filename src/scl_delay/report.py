"""Metrics -> the human report (markdown) and its figures (PNG bytes). The caller writes files."""

from __future__ import annotations

import io

import numpy as np

from .metric_lines import METRIC_TITLES

PR_CURVE_FILE = "pr_curve.png"
CONFUSION_FILE = "confusion_matrix.png"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(columns: dict[str, dict]) -> str:
    """A markdown table: one row per metric, one column per named metrics dict."""
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for key, title in METRIC_TITLES.items():
        lines.append(f"| {title} | " + " | ".join(_fmt(m.get(key, "")) for m in columns.values()) + " |")
    return "\n".join(lines)


def render_markdown(metrics: dict, metadata: dict) -> str:
    test, baselines = metrics["test"], metrics["baselines"]
    (tn, fp), (fn, tp) = test["confusion_matrix"]
    hp = metadata["hyperparameters"]
    return "\n".join(
        [
            f"# scl-delay model `{metadata['model_version']}`",
            "",
            f"Feature set `{hp['feature_set']}`, split `{hp['split']}`, threshold tuned on validation for "
            f"recall {hp['target_recall']}. Test split: {test['rows']} flights, "
            f"{test['positive_rate']:.1%} delayed.",
            "",
            metrics_table(
                {
                    "model (test)": test,
                    "logistic regression (test)": baselines["logistic_regression"],
                    "majority class (test)": baselines["majority"],
                    "model (validation)": metrics["validation"],
                }
            ),
            "",
            "Confusion matrix on the test split at the tuned threshold:",
            "",
            "| | predicted on time | predicted delayed |",
            "|---|---:|---:|",
            f"| on time | {tn} | {fp} |",
            f"| delayed | {fn} | {tp} |",
            "",
            f"![precision-recall curve]({PR_CURVE_FILE}) ![confusion matrix]({CONFUSION_FILE})",
            "",
            f"Data: {metrics['data']['rows_used']} rows used of {metrics['data']['rows_read']} read, "
            f"{metrics['data']['unusable_rows']} unusable, "
            f"{metrics['data']['duplicate_rows_dropped']} duplicates dropped; "
            f"dataset sha256 `{metadata['dataset_sha256'][:16]}`; commit `{metadata['git_commit']}`.",
            "",
        ]
    )


def render_figures(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    operating_point: tuple[float, float],
    confusion: list[list[int]],
) -> dict[str, bytes]:
    """PR curves (name -> (recall, precision)) with the chosen point, and the confusion matrix, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.scatter([operating_point[0]], [operating_point[1]], color="black", zorder=3, label="tuned threshold")
    ax.set(
        xlabel="recall (delayed)",
        ylabel="precision (delayed)",
        title="Precision-recall, test split",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper right")
    figures = {PR_CURVE_FILE: _png(fig, plt)}

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(np.array(confusion), cmap="Blues")
    for (i, j), count in np.ndenumerate(np.array(confusion)):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["on time", "delayed"],
        yticklabels=["on time", "delayed"],
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix, test split",
    )
    figures[CONFUSION_FILE] = _png(fig, plt)
    return figures


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
