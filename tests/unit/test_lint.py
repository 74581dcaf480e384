"""ruff over the whole tree, with the rules selected in pyproject.toml ([tool.ruff.lint])."""

import subprocess
import sys

from conftest import ROOT


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ruff exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
