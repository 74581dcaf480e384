"""The PR comment for a training job: metrics against the live model, changed hyperparameters, artifact.

Pure: takes the training result and the live record (dicts), returns markdown.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..metric_lines import HIGHER_IS_BETTER, METRIC_TITLES
from ..report import inline_figures

REPORT_MARKER = "<!-- scl-delay-training-report -->"


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "—"


def _delta(name: str, new, old) -> str:
    if not isinstance(new, (int, float)) or not isinstance(old, (int, float)):
        return "—"
    d = new - old
    if abs(d) < 5e-5:
        return "±0"
    arrow = "" if name not in HIGHER_IS_BETTER else (" ▲" if d > 0 else " ▼")
    return f"{d:+.4f}{arrow}"


def metrics_vs_live(metrics: Mapping[str, float], live: Mapping | None, split: str = "test") -> str:
    live_metrics = (live or {}).get("metrics", {})
    lines = [f"| metric ({split}) | this PR | live | change |", "|---|---:|---:|---:|"]
    for key, title in METRIC_TITLES.items():
        name = f"{split}:{key}"
        new, old = metrics.get(name), live_metrics.get(name)
        lines.append(f"| {title} | {_num(new)} | {_num(old)} | {_delta(key, new, old)} |")
    return "\n".join(lines)


def hyperparameter_changes(
    current: Mapping[str, str], base: Mapping[str, str] | None
) -> list[tuple[str, str, str]]:
    """(name, base value, PR value) for every key whose value differs; values compared as SageMaker
    strings."""
    if base is None:
        return []
    keys = sorted(set(current) | set(base))
    return [(k, base.get(k, "—"), current.get(k, "—")) for k in keys if base.get(k) != current.get(k)]


def render_report(
    result: Mapping,
    live: Mapping | None,
    base_hyperparameters: Mapping[str, str] | None,
    base_label: str,
    training_report: str | None = None,
    region: str | None = None,
    artifact_metrics: Mapping | None = None,
) -> str:
    job, status = result["job_name"], result["status"]
    lines = [REPORT_MARKER, f"## scl-delay training `{job}`: {status}", ""]
    meta = [f"commit `{result.get('commit', 'unknown')}`"]
    if result.get("pr_number"):
        meta.append(f"PR #{result['pr_number']}")
    meta.append(f"image `{result['image']}`")
    if result.get("training_seconds") is not None:
        meta.append(f"{result['training_seconds']} s on {result.get('instance_type', '?')}")
    lines += [", ".join(meta) + ".", ""]
    if status != "Completed":
        lines += ["### Failure", "", "```", str(result.get("failure_reason") or "no reason given"), "```", ""]
        return "\n".join(lines)

    if live:
        lines += [
            (
                f"### Metrics against the live model `{live.get('training_job', '?')}` "
                f"({live.get('version_label') or 'unversioned'}, "
                f"endpoint `{live.get('endpoint_name', '?')}`, commit `{live.get('commit', '?')}`)"
            ),
            "",
        ]
    else:
        lines += ["### Metrics", "", "No model is live yet: nothing to compare against.", ""]
    lines += [metrics_vs_live(result["final_metrics"], live), ""]
    lines += [
        (
            f"<details><summary>validation split</summary>\n\n"
            f"{metrics_vs_live(result['final_metrics'], live, 'validation')}\n\n</details>"
        ),
        "",
    ]

    lines += figures_section(artifact_metrics)
    lines += registry_section(result, live, region)
    lines += [f"### Hyperparameters changed against {base_label}", ""]
    changes = hyperparameter_changes(result["hyperparameters"], base_hyperparameters)
    if base_hyperparameters is None:
        lines += ["No baseline hyperparameters were available to compare against.", ""]
    elif not changes:
        lines += [f"None: same hyperparameters as {base_label}.", ""]
    else:
        lines += [f"| hyperparameter | {base_label} | this PR |", "|---|---|---|"]
        lines += [f"| `{k}` | `{old}` | `{new}` |" for k, old, new in changes] + [""]

    lines += ["### Artifact", "", f"- model: `{result['model_artifact']}`"]
    if result.get("output_artifact"):
        lines.append(f"- output: `{result['output_artifact']}`")
    if result.get("console_url"):
        lines.append(f"- job: {result['console_url']}")
    lines.append("")
    if training_report:
        lines += [
            "<details><summary>Training report (from the artifact)</summary>",
            "",
            training_report.replace(REPORT_MARKER, "").strip(),
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def registry_section(result: Mapping, live: Mapping | None, region: str | None) -> list[str]:
    """Markdown lines: the model package this PR registered, its status, and the live version beside it."""
    arn = result.get("model_package_arn")
    if not arn:
        return []
    group, number = result.get("model_package_group", "?"), result.get("model_package_version", "?")
    link = f"`{group}` **v{number}**"
    if region:
        from .names import console_host

        url = (
            f"https://{console_host(region)}/sagemaker/home?region={region}#/model-registry/{group}/{number}"
        )
        link = f"[{group} v{number}]({url})"
    lines = [
        "### Model registry",
        "",
        f"- registered {link}: **{result.get('model_package_status', '?')}**; merging this PR approves and "
        f"deploys it if it passes the gate against the live version",
        f"- package: `{arn}`",
        f"- image: `{result.get('image', '?')}`; "
        f"artifact sha256 `{str(result.get('artifact_sha256', '?'))[:16]}…`",
    ]
    if live:
        lines.append(
            f"- live: {live.get('version_label', '?')} (commit `{str(live.get('commit', '?'))[:8]}`); "
            f"the table above compares against it"
        )
    else:
        lines.append("- live: none yet")
    lines.append(f"- inspect: `aws sagemaker describe-model-package --model-package-name {arn}`")
    return [*lines, ""]


def figures_section(artifact_metrics: Mapping | None) -> list[str]:
    """The precision-recall curve (Mermaid) and confusion matrix (table) inline, from the artifact's
    metrics.json: GitHub draws both in the comment, no login or image hosting needed; the PNGs stay
    artifacts."""
    figures = inline_figures(dict(artifact_metrics)) if artifact_metrics else ""
    if not figures:
        return []
    return ["### Precision-recall and confusion matrix (test split)", "", figures, ""]
