"""Training loses nothing: every fault ends with a clear failure file, a non-zero exit, no usable half
artifact."""

from __future__ import annotations

import errno
import signal
import subprocess
import time

import pandas as pd
import pytest
import xgboost as xgb
from conftest import ROOT, make_opt_ml, venv_env

from scl_delay.artifact import METADATA_FILE
from scl_delay.settings import TrainSettings
from scl_delay.synthetic import generate
from scl_delay.training import main

FAST = {"num_round": "30", "early_stopping_rounds": "5"}


def run_in_process(tmp_path, data, **hps):
    root = make_opt_ml(tmp_path / "opt_ml", None, {**FAST, **hps})
    settings = TrainSettings.from_env({"OPT_ML_DIR": str(root), "SM_CHANNEL_TRAINING": str(data)})
    return main(settings), settings


def assert_no_artifact(settings: TrainSettings) -> None:
    leftovers = [p.name for p in settings.model_dir.iterdir()] if settings.model_dir.exists() else []
    assert METADATA_FILE not in leftovers and not any(n.startswith(".partial") for n in leftovers), leftovers


def test_truncated_file_reports_the_cut_line_and_trains_on_the_rest(tmp_path, synthetic_csv):
    text = synthetic_csv.read_text()
    data = tmp_path / "flights.csv"
    data.write_text(text[: len(text) - 60])  # cuts the last line in the middle
    code, settings = run_in_process(tmp_path, data)
    assert code == 0, settings.failure_file.read_text()
    quality = (settings.output_data_dir / "data_quality.json").read_text()
    assert "flights.csv line 4001: expected 18 fields as in the header, got" in quality, quality[:2000]
    assert '"unusable_rows": 1' in quality


def test_wrong_encoding_fails_naming_the_missing_columns(tmp_path, synthetic_csv):
    data = tmp_path / "flights.csv"
    data.write_bytes(synthetic_csv.read_text().encode("utf-16"))
    code, settings = run_in_process(tmp_path, data)
    assert code != 0
    assert settings.failure_file.read_text().startswith(
        "DatasetError: flights.csv: missing required column(s)"
    )
    assert_no_artifact(settings)


def test_one_broken_file_in_a_channel_fails_naming_it(tmp_path, synthetic_csv):
    folder = tmp_path / "channel"
    folder.mkdir()
    pd.read_csv(synthetic_csv, dtype=str).to_csv(folder / "part-1.csv", index=False)
    (folder / "part-2.csv").write_text("Fecha-I,OPERA\n2017-01-01 10:00:00,Grupo LATAM\n")
    code, settings = run_in_process(tmp_path, folder)
    assert code != 0
    assert settings.failure_file.read_text().startswith(
        "DatasetError: part-2.csv: missing required column(s) Fecha-O"
    )
    assert_no_artifact(settings)


def test_disk_full_while_writing_leaves_no_artifact_serve_would_accept(tmp_path, synthetic_csv, monkeypatch):
    def no_space(self, fname):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xgb.Booster, "save_model", no_space)
    code, settings = run_in_process(tmp_path, synthetic_csv)
    assert code != 0
    assert settings.failure_file.read_text().startswith(
        "InternalError: OSError(28, 'No space left on device')"
    )
    assert_no_artifact(settings)


def test_a_failed_retrain_does_not_leave_the_previous_metadata_beside_a_new_booster(
    tmp_path, synthetic_csv, monkeypatch
):
    code, settings = run_in_process(tmp_path, synthetic_csv)
    assert code == 0 and (settings.model_dir / METADATA_FILE).exists()
    monkeypatch.setattr(
        xgb.Booster, "save_model", lambda self, f: (_ for _ in ()).throw(OSError(errno.EIO, "I/O"))
    )
    settings.failure_file.unlink(missing_ok=True)
    assert main(settings) != 0
    assert_no_artifact(settings)


@pytest.mark.timeout(120)
def test_sigterm_during_fit_writes_the_failure_and_exits_non_zero(tmp_path):
    data = tmp_path / "big.csv"
    generate(30_000, seed=3).to_csv(data, index=False)
    root = make_opt_ml(
        tmp_path / "opt_ml",
        data,
        {"num_round": "20000", "early_stopping_rounds": "0", "eta": "0.001", "max_depth": "10"},
    )
    with subprocess.Popen(
        [str(ROOT / "container" / "train")],
        env=venv_env(OPT_ML_DIR=str(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            if line.startswith("stage fit: started"):
                break
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        output = process.stdout.read()
        assert process.wait(timeout=60) != 0, output
    assert (root / "output" / "failure").read_text().startswith("Interrupted: training stopped by SIGTERM")
    assert not (root / "model" / METADATA_FILE).exists()


def test_sigterm_while_train_still_imports_its_libraries_writes_the_failure(
    tmp_path, monkeypatch, synthetic_csv
):
    """The ~2 s of pandas/xgboost imports come after the SIGTERM handler: a stop then still leaves a
    reason."""
    import builtins
    import os
    import sys

    from scl_delay.cli import train_main

    real_import = builtins.__import__

    def import_then_stop(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 1 and name == "training":  # cli.train_main's `from .training import main`
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs here, in the main thread
        return real_import(name, globals, locals, fromlist, level)

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.delitem(sys.modules, "scl_delay.training")
    monkeypatch.setattr(builtins, "__import__", import_then_stop)
    try:
        code = train_main(["--data", str(synthetic_csv), "--model-dir", str(tmp_path / "model")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 1
    assert (
        (tmp_path / "output" / "failure").read_text().startswith("Interrupted: training stopped by SIGTERM")
    )
    assert not (tmp_path / "model").exists()
