"""The benchmark scripts run end to end in their cheap modes (small data, seconds of load), so `make bench`
cannot rot between the runs that fill the README's tables. Their figures are not checked here: issue floors
are measured by the scripts, never by a timed test. scripts/bench_image.py's smoke test needs the image and
lives in tests/container/test_image.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from processes import ROOT, venv_env

pytestmark = pytest.mark.slow
TABLE_ROW = re.compile(r"^\|.*\|$", re.MULTILINE)


def run_script(name: str, *args: str, timeout_s: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        env=venv_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_bench_train_prints_its_table_for_both_runs(synthetic_csv):
    result = run_script("bench_train.py", "--data", str(synthetic_csv))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = TABLE_ROW.findall(result.stdout)
    assert rows[0].startswith("| run | rows | wall s") and len(rows) == 4, result.stdout
    assert rows[2].startswith("| challenge/random | 4000 |") and rows[3].startswith("| full/time | 4000 |")


def test_bench_train_without_data_says_what_it_looked_for(tmp_path):
    result = run_script("bench_train.py", SCL_DATASET=str(tmp_path / "missing.csv"))
    assert result.returncode == 1 and result.stderr.strip().startswith("bench_train: SCL_DATASET="), result


@pytest.mark.timeout(600)
def test_bench_serve_prints_its_table_in_a_short_run(model_dir):
    if shutil.which("wrk") is None and os.geteuid() != 0:
        pytest.skip("wrk is not installed and bench_serve.py can install it only as root")
    result = run_script(
        "bench_serve.py",
        "--model-dir",
        str(model_dir),
        "--duration",
        "1",
        "--batch-duration",
        "1",
        "--repeats",
        "1",
        "--cache-entries",
        "500",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = TABLE_ROW.findall(result.stdout)
    assert rows[0].startswith("| scenario | req/s |"), result.stdout
    titles = [row.split("|")[1].strip() for row in rows[2:]]
    assert titles[:2] == ["single JSON, distinct, cache off", "single JSON, distinct, cache on (full)"], rows
    assert "constant Flask app, same gunicorn settings" in titles, rows


def test_bench_steps_prints_one_row_per_step(model_dir):
    result = run_script("bench_steps.py", "--model-dir", str(model_dir), "--records", "50", "--repeats", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    steps_table, engines_table = result.stdout.split("| rows per call |")
    rows = TABLE_ROW.findall(steps_table)
    steps = [row.split("|")[1].strip() for row in rows[2:]]
    assert steps[:4] == [
        "decode the JSON body",
        "parse and validate the record",
        "features",
        "model (tree walk, one row)",
    ]
    assert all(float(row.split("|")[2]) > 0 for row in rows[2:]), rows
    engine_rows = TABLE_ROW.findall(engines_table)[1:]  # after the header's rule
    assert [row.split("|")[1].strip() for row in engine_rows] == ["1", "2", "8", "32"], engines_table
    for row in engine_rows:  # the default model keeps every engine on
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        assert len(cells) == 3 and all(float(c.removesuffix(" µs").replace(",", "")) > 0 for c in cells), row
