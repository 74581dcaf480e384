"""Constants and helpers for the aws suite (imported by its conftest and tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-sagemaker-execution"
APIGW_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-apigateway-invoke"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay:0123456789abcdef"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEAK_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
GOOD_HP = ["num_round=100", "early_stopping_rounds=20"]
WEAK_HP = ["num_round=2", "max_depth=1", "feature_set=challenge", "early_stopping_rounds=0"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def venv_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def training_args(
    bucket: str,
    out: Path,
    data: str,
    commit: str,
    hp: list[str],
    state: str,
    base: Path | None = None,
    pr: str = "42",
) -> list[str]:
    args = [
        "--image-uri",
        IMAGE,
        "--role-arn",
        ROLE_ARN,
        "--data",
        data,
        "--output-s3",
        f"s3://{bucket}/artifacts",
        "--hyperparameters",
        str(ROOT / "hyperparameters.json"),
        "--commit",
        commit,
        "--pr-number",
        pr,
        "--repo",
        "acme/scl-delay",
        "--state-s3",
        state,
        "--result",
        str(out / "training_result.json"),
        "--report",
        str(out / "report.md"),
        "--poll-seconds",
        "0.3",
        "--wait-timeout-minutes",
        "4",
    ]
    for pair in hp:
        args += ["--hp", pair]
    if base:
        args += ["--base-hyperparameters", str(base)]
    return args


def run_script(script: str, args: list[str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    """The real top-level script in a subprocess, with this session's AWS environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=venv_env(),
        cwd=ROOT,
        check=False,
    )


class NoAws:
    """A clients factory that fails the test if anything asks for AWS."""

    def __call__(self, region):
        raise AssertionError(f"AWS clients were requested (region {region}) before input validation failed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
