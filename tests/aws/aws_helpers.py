"""Constants and helpers for the aws suite (imported by its conftest and tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-sagemaker-training"
SERVING_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-sagemaker-serving"
APIGW_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-apigateway-invoke"
REPOSITORY = "scl-delay"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEAK_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
GROUP = "scl-delay-test"  # the registry group the session's two jobs register in


def image_for(commit: str) -> str:
    """The image pr-train pushes for a commit: the ECR repository, tagged with the commit."""
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:{commit}"


IMAGE = image_for(COMMIT)


def push_image(ecr, commit: str, repository: str = REPOSITORY) -> str:
    """What `docker push` leaves in ECR, as moto records it: a manifest under the commit's tag; its digest."""
    import hashlib
    import json

    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": f"sha256:{commit[:8] * 8}",
        },
        # moto's digest is the sha256 of the layer digests: one layer per commit gives each its own
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1,
                "digest": f"sha256:{hashlib.sha256(commit.encode()).hexdigest()}",
            }
        ],
    }
    image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=commit)
    return image["image"]["imageId"]["imageDigest"]


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
    group: str = GROUP,
    base: Path | None = None,
    pr: str = "42",
    endpoint: str = "scl-delay-none",
) -> list[str]:
    args = [
        "--image-uri",
        image_for(commit),
        "--training-role-arn",
        ROLE_ARN,
        "--data",
        data,
        "--output-s3",
        f"s3://{bucket}/training",
        "--hyperparameters",
        str(ROOT / "hyperparameters.json"),
        "--commit",
        commit,
        "--pr-number",
        pr,
        "--repo",
        "acme/scl-delay",
        "--model-package-group",
        group,
        "--endpoint-name",
        endpoint,
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
