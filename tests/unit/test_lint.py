"""The tools that keep the code as it is: ruff (rules and line length from pyproject.toml), ruff's formatter,
and mypy over src/ ([tool.mypy]). `make lint` runs this file."""

import subprocess
import sys

import pytest
from conftest import ROOT


def run(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_ruff_format_would_change_nothing():
    result = run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}\n{result.stderr}"


@pytest.mark.timeout(600)
def test_mypy_finds_nothing_in_src():
    result = run("mypy", timeout_s=600)  # files and options: [tool.mypy]; incremental through .mypy_cache/
    assert result.returncode == 0, f"mypy exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
