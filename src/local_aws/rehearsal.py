"""Pieces for the local rehearsal (scripts/rehearse.py): data into moto's S3, and a real ``serve`` on the
model.tar.gz a training job left there, so InvokeEndpoint through the runtime stand-in reaches it."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

from .process import LocalProcess, free_port
from .training_backend import ROOT


def seed_dataset(
    s3, bucket: str, csv: Path | None = None, rows: int = 4000, key: str = "data/flights.csv"
) -> str:
    """Create the bucket and upload a dataset (synthetic unless ``csv`` is given); returns its S3 URI."""
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    if csv is None:
        from scl_delay.synthetic import generate

        body = generate(rows, seed=11).to_csv(index=False).encode()
    else:
        body = Path(csv).read_bytes()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def start_serve(s3, model_uri: str, workdir: Path, timeout_s: float = 30.0) -> LocalProcess:
    """Unpack model.tar.gz into <workdir>/model (as SageMaker does) and run container/serve on a free port."""
    bucket, key = model_uri.removeprefix("s3://").split("/", 1)
    (workdir / "model").mkdir(parents=True, exist_ok=True)
    archive = workdir / "model.tar.gz"
    s3.download_file(bucket, key, str(archive))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir / "model", filter="data")
    port = free_port()
    env = {
        **os.environ,
        "OPT_ML_DIR": str(workdir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_WORKERS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log_path = workdir / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(ROOT / "container" / "serve")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    serve = LocalProcess(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{serve.url}/ping", timeout=2) as r:
                if r.status == 200:
                    return serve
        except OSError:
            time.sleep(0.1)
    serve.stop()
    raise RuntimeError(f"serve not ready in {timeout_s} s:\n{serve.log_tail()}")
