"""The `train` executable against a SageMaker-shaped /opt/ml tree: artifact, metric lines, failures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, TRAIN_STDOUT, make_opt_ml, run_train, venv_env

from scl_delay.artifact import load_model
from scl_delay.metric_lines import metric_definitions
from scl_delay.settings import TrainSettings
from scl_delay.training import main

FAST = {"num_round": "30", "early_stopping_rounds": "5"}


def test_train_writes_a_complete_artifact_that_loads(trained_opt_ml):
    model = trained_opt_ml / "model"
    names = {p.name for p in model.iterdir()}
    assert {
        "booster.ubj",
        "metadata.json",
        "metrics.json",
        "report.md",
        "pr_curve.png",
        "confusion_matrix.png",
    } <= names, names
    assert not any(n.startswith(".partial") for n in names)
    loaded = load_model(model)
    meta = loaded.metadata
    assert meta["hyperparameters"]["num_round"] == 200 and len(meta["dataset_sha256"]) == 64
    assert meta["input_schema"]["categories"]["TIPOVUELO"] == ["I", "N"]
    assert 0 < loaded.threshold < 1 and meta["validation_recall"] >= meta["target_recall"]
    quality = json.loads((trained_opt_ml / "output" / "data" / "data_quality.json").read_text())
    assert quality["rows_used"] == quality["rows_read"] and quality["unusable_rows"] == 0
    assert not (trained_opt_ml / "output" / "failure").exists()


def test_every_metric_definition_matches_one_printed_line(trained_opt_ml):
    stdout = (trained_opt_ml / TRAIN_STDOUT).read_text()
    metrics = json.loads((trained_opt_ml / "model" / "metrics.json").read_text())
    (tn, fp), (fn, tp) = metrics["test"]["confusion_matrix"]
    counts = {"true_negatives": tn, "false_positives": fp, "false_negatives": fn, "true_positives": tp}
    sources = {
        "validation": metrics["validation"],
        "test": {**metrics["test"], **counts},
        "baseline_logreg": metrics["baselines"]["logistic_regression"],
        "baseline_majority": metrics["baselines"]["majority"],
    }
    assert len(metric_definitions()) <= 40  # SageMaker's limit
    for definition in metric_definitions():
        found = re.findall(definition["Regex"], stdout)
        assert len(found) == 1, (definition, stdout[-2000:])
        split, name = definition["Name"].split(":")
        assert float(found[0]) == pytest.approx(sources[split][name], abs=1e-6)
    assert re.search(r"stage fit: done in [0-9.]+ s", stdout)


def failing_run(tmp_path: Path, data: Path | None, hps=None) -> tuple[int, str]:
    root = make_opt_ml(tmp_path / "opt_ml", data, {**FAST, **(hps or {})})
    result = run_train(root)
    failure = root / "output" / "failure"
    assert failure.is_file(), result.stdout + result.stderr
    assert not (root / "model" / "metadata.json").exists()
    return result.returncode, failure.read_text()


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing channel", r"^DatasetError: training data not found: .*input/data/training"),
        ("empty file", r"^DatasetError: flights.csv is empty"),
        ("missing column", r"^DatasetError: flights.csv: missing required column\(s\) OPERA"),
        (
            "garbage file",
            r"^DatasetError: flights.csv: missing required column\(s\) Fecha-I, .*; found '\\x00",
        ),
        (
            "wrong hyperparameter",
            r"^HyperparameterError: invalid hyperparameter max_depth: .*less than or equal to 16",
        ),
        (
            "unknown hyperparameter",
            r"^HyperparameterError: unknown hyperparameter\(s\) depth; valid names: feature_set",
        ),
    ],
)
def test_train_fails_clearly_with_reason_first(tmp_path, synthetic_csv, case, expected):
    data, hps = synthetic_csv, {}
    if case == "missing channel":
        data = None
    elif case == "empty file":
        data = write(tmp_path, "flights.csv", b"")
    elif case == "missing column":
        frame = pd.read_csv(synthetic_csv, dtype=str).drop(columns="OPERA")
        data = tmp_path / "flights.csv"
        frame.to_csv(data, index=False)
    elif case == "garbage file":
        data = write(tmp_path, "flights.csv", bytes(range(256)) * 40)
    elif case == "wrong hyperparameter":
        hps = {"max_depth": "99"}
    elif case == "unknown hyperparameter":
        hps = {"depth": "4"}
    code, reason = failing_run(tmp_path, data, hps)
    assert code != 0
    assert re.search(expected, reason), reason
    assert len(reason.splitlines()[0]) < 1024


# In-process runs of the same pipeline for data-handling cases (faster than a subprocess each).


def train_in_process(tmp_path: Path, data: Path, **hps: str) -> tuple[int, TrainSettings]:
    root = make_opt_ml(tmp_path / "opt_ml", None, {**FAST, **hps})
    settings = TrainSettings.from_env({"OPT_ML_DIR": str(root), "SM_CHANNEL_TRAINING": str(data)})
    return main(settings), settings


def test_bad_rows_are_reported_with_line_and_column_and_tolerated_below_the_threshold(
    tmp_path, synthetic_csv
):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    frame.loc[4, "Fecha-I"] = "2017-13-45 99:00:00"
    frame.loc[9, "TIPOVUELO"] = "X"
    data = tmp_path / "flights.csv"
    frame.to_csv(data, index=False)
    code, settings = train_in_process(tmp_path, data, max_invalid_fraction="0.01")
    assert code == 0
    quality = json.loads((settings.output_data_dir / "data_quality.json").read_text())
    assert quality["unusable_rows"] == 2 and quality["rows_used"] == len(frame) - 2
    assert quality["problems"][0].startswith("flights.csv line 6, column Fecha-I: expected a date-time")
    assert quality["problems"][1].startswith("flights.csv line 11, column TIPOVUELO")


def test_too_many_bad_rows_fail_naming_the_first_rows(tmp_path, synthetic_csv):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    frame.loc[:99, "Fecha-O"] = "soon"
    data = tmp_path / "flights.csv"
    frame.to_csv(data, index=False)
    code, settings = train_in_process(tmp_path, data, max_invalid_fraction="0.01")
    reason = settings.failure_file.read_text()
    assert code != 0
    assert reason.startswith(
        "DatasetError: 100 of 4000 rows unusable (2.50%), more than max_invalid_fraction=0.01; "
        "the first: flights.csv line 2, column Fecha-O: expected a date-time"
    ), reason


def test_latin1_files_folders_and_duplicates_are_read(tmp_path, synthetic_csv):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    folder = tmp_path / "channel"
    folder.mkdir()
    frame.iloc[:2000].to_csv(folder / "part-1.csv", index=False, encoding="latin-1")
    pd.concat([frame.iloc[2000:], frame.iloc[:10]]).to_csv(folder / "part-2.csv", index=False)
    code, settings = train_in_process(tmp_path, folder)
    assert code == 0, settings.failure_file.read_text()
    quality = json.loads((settings.output_data_dir / "data_quality.json").read_text())
    assert quality["files"] == ["part-1.csv", "part-2.csv"]
    assert quality["duplicate_rows_dropped"] == 10 and quality["rows_used"] == len(frame)


def test_one_class_only_fails(tmp_path, synthetic_csv):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    frame["Fecha-O"] = frame["Fecha-I"]
    data = tmp_path / "flights.csv"
    frame.to_csv(data, index=False)
    code, settings = train_in_process(tmp_path, data)
    assert code != 0
    assert "needs at least 50 rows and both classes" in settings.failure_file.read_text()


def test_same_seed_and_data_give_the_same_model(tmp_path, synthetic_csv):
    boosters = []
    for run in ("a", "b"):
        code, settings = train_in_process(tmp_path / run, synthetic_csv)
        assert code == 0
        boosters.append((settings.model_dir / "booster.ubj").read_bytes())
    assert boosters[0] == boosters[1]


def test_a_local_run_writes_its_outputs_beside_the_model_dir(tmp_path, synthetic_csv):
    """`python train.py --data F --model-dir D` touches nothing under /opt/ml: output/ goes beside D."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--data",
            str(synthetic_csv),
            "--model-dir",
            str(tmp_path / "model"),
            "--hp",
            "num_round=30",
        ],
        env=venv_env(OPT_ML_DIR=str(tmp_path / "no-such-opt-ml")),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model" / "metadata.json").is_file()
    assert (tmp_path / "output" / "data" / "data_quality.json").is_file()
    assert not (tmp_path / "no-such-opt-ml").exists()


def test_a_validation_channel_costs_the_training_split_no_rows(tmp_path, synthetic_csv):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    training, validation = tmp_path / "training.csv", tmp_path / "validation.csv"
    frame.iloc[:3000].to_csv(training, index=False)
    frame.iloc[3000:].to_csv(validation, index=False)
    root = make_opt_ml(
        tmp_path / "opt_ml", training, {**FAST, "split": "random", "test_size": "0.2"}, validation=validation
    )
    result = run_train(root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rows train=2400 validation=1000 test=600" in result.stdout, result.stdout[-3000:]
    assert re.search(r"^data validation \{", result.stdout, re.MULTILINE)
