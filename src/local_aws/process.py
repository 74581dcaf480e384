"""The one way to run a local server for tests, benchmarks and the rehearsal: a command on a free 127.0.0.1
port in its own process group, its output in a log file, ``/ping`` polled until a deadline (failing at once
if the process exits), and the whole group stopped (gunicorn's master and workers).

    serve = LocalProcess.start(serve_command(), env, log_path)   # the port goes in SAGEMAKER_BIND_TO_PORT
    serve.wait_ping(deadline_s=30)
    ...
    serve.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "container" / "serve"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    """`container/serve` of this checkout (gunicorn from the PATH given to it)."""
    return [str(SERVE)]


@dataclass
class LocalProcess:
    url: str
    process: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(
        cls, command: Sequence[str], env: Mapping[str, str], log_path: Path, port_env: str = PORT_ENV
    ) -> LocalProcess:
        """``command`` with a free port in ``port_env``, in a new session, its output in ``log_path``."""
        port = free_port()
        started = time.monotonic()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(command),
                env={**env, port_env: str(port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(f"http://127.0.0.1:{port}", process, Path(log_path), started)

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    def wait_ping(self, deadline_s: float = 30, expect: int | None = 200) -> requests.Response:
        """Poll /ping until it answers ``expect`` (None: anything) or ``deadline_s`` after the start; raises
        RuntimeError with the log's tail if the process exits first or the deadline passes."""
        end = self.started + deadline_s
        last = "no answer"
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode} before /ping answered:\n"
                    f"{self.log_tail()}"
                )
            try:
                response = requests.get(f"{self.url}/ping", timeout=1)
                if expect is None or response.status_code == expect:
                    return response
                last = f"{response.status_code} {response.text[:300]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError(
            f"/ping did not answer {expect} within {deadline_s} s (last: {last}):\n{self.log_tail()}"
        )

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """``sig`` to the whole process group."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the group, wait, SIGKILL what is left; returns the exit code."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        self.signal(signal.SIGKILL)  # workers left behind by a master that died
        return self.process.returncode

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
