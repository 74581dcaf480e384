"""`container/serve` refusing to start says why in one line: a bad environment variable (named, with its
value) or a busy port (found before the model loads, not after gunicorn's five bind retries)."""

from __future__ import annotations

import socket
import subprocess

import pytest
from processes import SERVE, venv_env


def run_serve(tmp_path, model_dir, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SERVE)],
        env=venv_env(OPT_ML_DIR=str(tmp_path), SM_MODEL_DIR=str(model_dir), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env, line",
    [
        ({"MODEL_SERVER_WORKERS": "zero"}, "serve: MODEL_SERVER_WORKERS='zero': expected a whole number"),
        ({"SAGEMAKER_BIND_TO_PORT": "0"}, "serve: SAGEMAKER_BIND_TO_PORT='0': must be at least 1"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(tmp_path, model_dir, env, line):
    result = run_serve(tmp_path, model_dir, **env)
    assert result.returncode == 1 and (result.stdout + result.stderr).strip() == line, result


def test_a_busy_port_is_one_line_before_the_model_loads(tmp_path, model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(tmp_path, model_dir, SAGEMAKER_BIND_TO_PORT=str(port))
    expected = f"serve: port {port} is in use; stop what listens there or set SAGEMAKER_BIND_TO_PORT"
    assert result.returncode == 1 and (result.stdout + result.stderr).strip() == expected, result
