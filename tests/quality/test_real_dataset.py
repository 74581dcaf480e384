"""Quality floors on the real dataset, found as every benchmark finds it (local_aws.real_dataset: SCL_DATASET,
else ../shared/data/dataset_SCL.csv); skipped, saying why, when there is none."""

import subprocess
import sys

import pytest
from conftest import ROOT

from local_aws.real_dataset import find_real_dataset, why_absent


@pytest.mark.quality
@pytest.mark.timeout(600)
def test_quality_floors_hold_on_the_real_dataset():
    data = find_real_dataset()
    if data is None:
        pytest.skip(why_absent())
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--data", str(data), "--check-quality"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FLOOR MISSED" not in result.stdout
