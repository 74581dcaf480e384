"""Quality floors on the real dataset named by SCL_DATASET (skipped without it, as on a laptop)."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.quality
@pytest.mark.timeout(600)
def test_quality_floors_hold_on_the_real_dataset():
    data = os.environ.get("SCL_DATASET")
    if not data:
        pytest.skip("SCL_DATASET is not set (CI sets it to ../shared/data/dataset_SCL.csv)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--data", data, "--check-quality"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FLOOR MISSED" not in result.stdout
