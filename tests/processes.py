"""Live servers for tests: ``local_aws.process.LocalProcess`` (the one implementation, shared with the
benchmarks and the rehearsal) under the names the suites use, failing the test with the log's tail."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

from local_aws.process import PORT_ENV, ROOT, SERVE, LocalProcess, free_port

__all__ = ["ROOT", "SERVE", "ServerProcess", "free_port", "start_serve", "venv_env"]


def venv_env(**extra: str) -> dict[str, str]:
    """The environment for servers: this interpreter's bin folder (gunicorn, python) first on PATH.

    Lives here, not only in conftest.py: ``from conftest import`` is ambiguous once a suite folder has its
    own.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


class ServerProcess(LocalProcess):
    """``command`` listening on ``self.port`` (passed in ``port_env``); ``url`` is its base address."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        port_env: str = PORT_ENV,
        log_dir: Path | None = None,
    ):
        log_path = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=log_dir)[1])
        started = LocalProcess.start(command, env, log_path, port_env)
        super().__init__(started.url, started.process, started.log_path, started.started)

    @property
    def proc(self):
        return self.process

    def wait_ping(self, deadline_s: float = 20, expect: int | None = 200) -> requests.Response:
        try:
            return super().wait_ping(deadline_s, expect)
        except RuntimeError as e:
            raise AssertionError(str(e)) from None


def start_serve(opt_ml: Path, model_dir: Path, log_dir: Path, **env: str) -> ServerProcess:
    """`container/serve` exactly as SageMaker starts it, on a free loopback port; returns once /ping is
    200."""
    process = ServerProcess(
        [str(SERVE)], venv_env(OPT_ML_DIR=str(opt_ml), SM_MODEL_DIR=str(model_dir), **env), log_dir=log_dir
    )
    try:
        process.wait_ping(deadline_s=30)
    except BaseException:
        process.stop()
        raise
    return process
