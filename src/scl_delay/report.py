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


# --- inline figures: a PR comment shows Mermaid charts and Markdown tables without a login, and no image ---

PR_CURVE_POINTS = 21  # recall 0.00, 0.05, ..., 1.00


def sample_pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], points: int = PR_CURVE_POINTS) -> dict:
    """PR curves (name -> (recall, precision)) sampled at evenly spaced recall levels, for metrics.json.

    Each value is the interpolated precision: the best precision at a recall of at least that level (the
    usual PR-curve interpolation), 0 where the level is never reached.
    """
    levels = np.linspace(0.0, 1.0, points)
    sampled = {}
    for name, (recall, precision) in curves.items():
        recall, precision = np.asarray(recall, dtype=float), np.asarray(precision, dtype=float)
        found = recall > 0  # a point that finds no delayed flight has no precision (scikit-learn says 1)
        recall, precision = recall[found], precision[found]
        sampled[name] = [
            round(float(precision[recall >= level - 1e-12].max(initial=0.0)), 4) for level in levels
        ]
    return {"recall": [round(float(level), 4) for level in levels], "precision": sampled}


def pr_curve_mermaid(pr_curve: dict, title: str = "Precision-recall, test split") -> str:
    """A fenced Mermaid ``xychart-beta`` block: one line per curve over the sampled recall levels.

    xychart-beta has no legend, so the caller names the lines in order.
    """
    labels = ", ".join(f'"{level:.2f}"' for level in pr_curve["recall"])
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "recall (delayed)" [{labels}]',
        '    y-axis "precision (delayed)" 0 --> 1',
    ]
    lines += [
        f"    line [{', '.join(f'{value:.4f}' for value in values)}]"
        for values in pr_curve["precision"].values()
    ]
    return "\n".join(lines + ["```"])


def confusion_matrix_table(confusion: list[list[int]]) -> str:
    """The 2x2 confusion matrix ``[[tn, fp], [fn, tp]]`` as a Markdown table, with row totals."""
    (tn, fp), (fn, tp) = confusion
    return "\n".join(
        [
            "| actual \\ predicted | on time | delayed | total |",
            "|---|---:|---:|---:|",
            f"| on time | {tn} | {fp} | {tn + fp} |",
            f"| delayed | {fn} | {tp} | {fn + tp} |",
        ]
    )


def inline_figures(metrics: dict) -> str:
    """The PR comment's figures section from a metrics document (metrics.json): the test split's PR curves
    as a Mermaid chart and its confusion matrix as a table; empty when the document has neither."""
    test = metrics.get("test") or {}
    parts = []
    if metrics.get("pr_curve"):
        names = list(metrics["pr_curve"]["precision"])
        order = ", ".join(f"{i}. {name}" for i, name in enumerate(names, 1))
        point = ""
        if isinstance(test.get("recall"), float) and isinstance(test.get("precision"), float):
            point = (
                f" At the tuned threshold the model has recall {test['recall']:.3f}, "
                f"precision {test['precision']:.3f}."
            )
        parts += [pr_curve_mermaid(metrics["pr_curve"]), "", f"Lines in order: {order}.{point}", ""]
    if test.get("confusion_matrix"):
        parts += [
            "Confusion matrix, test split, at the tuned threshold:",
            "",
            confusion_matrix_table(test["confusion_matrix"]),
            "",
        ]
    return "\n".join(parts)
