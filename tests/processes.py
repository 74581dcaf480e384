"""Live servers for tests: a command on a free 127.0.0.1 port, in its own process group.

``ServerProcess`` starts the command, polls ``/ping`` until a deadline (failing at once if the process
exits), and on ``stop()`` signals the whole group (gunicorn's master and workers). Failure messages
carry the tail of the server's log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "container" / "serve"


def venv_env(**extra: str) -> dict[str, str]:
    """The environment for servers: this interpreter's bin folder (gunicorn, python) first on PATH.

    Lives here, not only in conftest.py: ``from conftest import`` is ambiguous once a suite folder has its own.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``command`` listening on ``self.port`` (passed in ``port_env``); ``url`` is its base address."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        port_env: str = "SAGEMAKER_BIND_TO_PORT",
        log_dir: Path | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=log_dir)[1])
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            list(command),
            env={**env, port_env: str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ping(self, deadline_s: float = 20, expect: int | None = 200) -> requests.Response:
        """Poll /ping until it answers (``expect``: that status) or the deadline; returns the answer."""
        end = self.started + deadline_s
        last = "no answer"
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before /ping answered:\n{self.log_tail()}"
                )
            try:
                response = requests.get(f"{self.url}/ping", timeout=1)
                if expect is None or response.status_code == expect:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(
            f"/ping did not answer {expect} within {deadline_s} s (last: {last}):\n{self.log_tail()}"
        )

    def signal(self, sig: int = signal.SIGTERM) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the group, wait, SIGKILL what is left; returns the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        self.signal(signal.SIGKILL)  # workers left behind by a master that died
        self._log.close()
        return self.proc.returncode
