"""moto's server in its own process, with the local stand-ins patched in before it serves.

    python -m local_aws.moto_server --port 0 --workdir /tmp/sm-jobs
    # prints "moto ready at http://127.0.0.1:<port>"; clients use AWS_ENDPOINT_URL=<that URL>

``start_moto_server`` does the same from Python (tests, scripts/rehearse.py) and returns a handle that
stops the process group. Patches applied in the server process: ``UpdateEndpoint``
(``moto_update_endpoint``) and real training runs (``training_backend``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .process import LocalProcess

READY = "moto ready at "
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--workdir", default="/tmp/scl-delay-training-jobs", help="where /opt/ml trees go")
    p.add_argument(
        "--no-training-backend", action="store_true", help="leave moto's instant fake training jobs alone"
    )
    args = p.parse_args(argv)
    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    from moto.server import ThreadedMotoServer

    from . import iam_enforcement, moto_fixes, moto_update_endpoint, training_backend

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://{args.host}:{port}"
    moto_update_endpoint.install()
    iam_enforcement.install()
    moto_fixes.install()
    if not args.no_training_backend:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        training_backend.install(url, Path(args.workdir))
    print(f"{READY}{url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


class MotoServer(LocalProcess):
    def client_env(self, region: str = "us-east-1") -> dict[str, str]:
        """Variables that point boto3 at this server with fake credentials."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_MAX_ATTEMPTS": "1",
        }


def start_moto_server(
    workdir: Path, log_path: Path, timeout_s: float = 30.0, extra_env: dict[str, str] | None = None
) -> MotoServer:
    """Start the patched moto server on a free loopback port; fail fast (with its log) if it exits."""
    env = {**os.environ, **FAKE_CREDENTIALS, **(extra_env or {})}
    env.pop("AWS_ENDPOINT_URL", None)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_aws.moto_server",
                "--port",
                "0",
                "--workdir",
                str(workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(rf"{READY}(\S+)", log_path.read_text(errors="replace"))
        if m:
            return MotoServer(m.group(1), process, log_path)
        if process.poll() is not None:
            raise RuntimeError(
                f"moto server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        time.sleep(0.05)
    server = MotoServer("", process, log_path)
    server.stop()
    raise RuntimeError(f"moto server not ready in {timeout_s} s:\n{server.log_tail()}")


if __name__ == "__main__":
    sys.exit(main())
