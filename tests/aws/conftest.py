"""One patched moto server per session (real HTTP on 127.0.0.1), boto3 pointed at it through
AWS_ENDPOINT_URL, and two real training jobs (a good and a deliberately weak one) run by the local
training backend. Everything else in this folder builds on these."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from local_aws.process import free_port

from .aws_helpers import (
    ACCOUNT,
    COMMIT,
    GOOD_HP,
    GROUP,
    REGION,
    ROOT,
    WEAK_COMMIT,
    WEAK_HP,
    push_image,
    run_script,
    training_args,
    venv_env,
)


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """The patched moto server with IAM enforced: every request after the bootstrap is authorised
    (local_aws.iam_enforcement says what moto's evaluation leaves out)."""
    from local_aws.iam_enforcement import enforce
    from local_aws.moto_server import start_moto_server

    root = tmp_path_factory.mktemp("moto")
    server = start_moto_server(root / "jobs", root / "moto.log")
    try:
        server.admin_env = enforce(server.url, REGION)
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def aws_env(moto):
    """boto3 in this process (and the scripts it starts) talks to moto as the local admin user; tests
    that prove a policy run as a role of infra/scl-delay.yaml instead (tests/aws/test_iam_enforced.py)."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(moto.client_env(REGION))
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(moto.admin_env)
    yield dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def sm(aws_env):
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture(scope="session")
def s3(aws_env):
    return boto3.client("s3", region_name=REGION)


@pytest.fixture(scope="session")
def gw(aws_env):
    return boto3.client("apigateway", region_name=REGION)


@pytest.fixture(scope="session")
def aas(aws_env):
    return boto3.client("application-autoscaling", region_name=REGION)


@pytest.fixture(scope="session")
def infra(aws_env) -> dict[str, str]:
    """infra/scl-delay.yaml applied to moto by the admin (local_aws.stack; idempotent): its outputs. Its roles
    are real in moto's IAM, so a training job whose RoleArn is the template's training role runs as that role
    (the local training backend) and may only read data/ and training/pr-*/input/ and write training/pr-*."""
    from local_aws import stack

    rendered = stack.render(
        stack.TEMPLATE, {"GitHubOwner": "acme", "GitHubRepo": "scl-delay"}, ACCOUNT, REGION
    )
    return stack.apply(rendered, boto3.session.Session(region_name=REGION))


@pytest.fixture(scope="session")
def bucket(infra) -> str:
    """The template's artifacts bucket: data/, training/pr-<N>/, deploy/<endpoint>/."""
    return infra["ArtifactBucketName"]


@pytest.fixture(scope="session")
def base_hyperparameters(tmp_path_factory) -> Path:
    """main's hyperparameters.json: the committed file at the repo root."""
    path = tmp_path_factory.mktemp("main") / "hyperparameters.json"
    path.write_text((ROOT / "hyperparameters.json").read_text())
    return path


@pytest.fixture(scope="session")
def ecr(aws_env):
    return boto3.client("ecr", region_name=REGION)


@pytest.fixture(scope="session")
def images(ecr) -> dict[str, str]:
    """The two commits' images pushed to moto's ECR: commit -> digest."""
    return {commit: push_image(ecr, commit) for commit in (COMMIT, WEAK_COMMIT)}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, bucket, synthetic_csv, images, base_hyperparameters):
    """Two real training jobs through the local backend, at the same time: `good` in-process (main()),
    `weak` through the training_job.py script in a subprocess; both register in the group GROUP."""
    from scl_delay.aws.cli import training_job_main

    good_out, weak_out = tmp_path_factory.mktemp("good"), tmp_path_factory.mktemp("weak")
    weak_args = training_args(bucket, weak_out, str(synthetic_csv), WEAK_COMMIT, WEAK_HP, GROUP, pr="43")
    good_args = training_args(
        bucket, good_out, str(synthetic_csv), COMMIT, GOOD_HP, GROUP, base=base_hyperparameters
    )
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        weak = pool.submit(run_script, "training_job.py", weak_args)
        good_rc = training_job_main(good_args)
        weak_proc = weak.result()
    assert weak_proc.returncode == 0, (
        f"weak job failed:\n{weak_proc.stdout[-3000:]}\n{weak_proc.stderr[-3000:]}"
    )
    assert good_rc == 0
    return {
        "good": json.loads((good_out / "training_result.json").read_text()),
        "good_report": (good_out / "report.md").read_text(),
        "good_dir": good_out,
        "weak": json.loads((weak_out / "training_result.json").read_text()),
        "weak_stdout": weak_proc.stdout,
        "seconds": time.monotonic() - started,
    }


@pytest.fixture(scope="session")
def serve_url(tmp_path_factory, trained, s3):
    """The real `serve` (gunicorn) on the good job's model.tar.gz, downloaded from moto's S3."""
    root = tmp_path_factory.mktemp("serve_opt_ml")
    bucket, key = trained["good"]["model_artifact"].removeprefix("s3://").split("/", 1)
    archive = root / "model.tar.gz"
    s3.download_file(bucket, key, str(archive))
    (root / "model").mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(root / "model", filter="data")
    port = free_port()
    with open(root / "serve.log", "w") as log:
        proc = subprocess.Popen(
            [str(ROOT / "container" / "serve")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=venv_env(OPT_ML_DIR=str(root), SAGEMAKER_BIND_TO_PORT=str(port), MODEL_SERVER_WORKERS="1"),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"serve exited with {proc.returncode}:\n{(root / 'serve.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve not ready in 30 s:\n{(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
