"""A cancelled pr-train run, played with the workflow's own step commands (read from pr-train.yml) in bash.

On cancellation the Actions runner signals the step's shell only. With the step's `exec`, the shell IS
training_job.py, which gets the SIGTERM and stops its training job. The clean-up step (`if: cancelled()`)
then finds nothing left; and when a launcher dies without stopping its job (the old, un-exec'd step: the
shell dies, the orphaned Python is killed later with SIGKILL), that clean-up step stops the job by its tags.

Real bash, real training_job.py, real moto server with the local training backend (the job is a real `train`
process, stopped with SIGTERM as SageMaker does); the clean-up step runs as the PR training role of
infra/scl-delay.yaml under moto's IAM enforcement (basic: see local_aws/iam_enforcement.py for what it
ignores). More lenient than GitHub: the runner's grace period before
it kills what is left is a few seconds here, and the job stops at once (AWS passes through `Stopping`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from . import loop_fixtures
from .aws_helpers import ROOT, image_for, push_image

pr_role_env, training_data = loop_fixtures.pr_role_env, loop_fixtures.training_data

REPO = "acme/scl-delay"


def _step(needle: str) -> str:
    """The `run:` of the train job's step whose command contains ``needle``, as the runner would run it."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "pr-train.yml").read_text())
    runs = [s["run"] for s in doc["jobs"]["train"]["steps"] if needle in str(s.get("run", ""))]
    assert len(runs) == 1, needle
    return runs[0]


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A checkout as the runner has it: the venv and scripts, and a slow hyperparameters.json (the job must
    still be running when the cancellation arrives)."""
    for name in (".venv", "training_job.py", "src"):
        (tmp_path / name).symlink_to(ROOT / name)
    hp = json.loads((ROOT / "hyperparameters.json").read_text())
    hp.update(num_round=20000, early_stopping_rounds=0, eta=0.001)
    (tmp_path / "hyperparameters.json").write_text(json.dumps(hp))
    return tmp_path


def _step_env(workspace: Path, infra: dict, data: str, pr: str, commit: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("PATH", "HOME")},
        "IMAGE_URI": image_for(commit),
        "SAGEMAKER_TRAINING_ROLE_ARN": infra["TrainingExecutionRoleArn"],
        "TRAINING_DATA_S3_URI": data,
        "ARTIFACT_S3_PREFIX": infra["TrainingS3Prefix"],
        "TRAINING_INSTANCE_TYPE": "ml.m5.large",
        "PR_NUMBER": pr,
        "HEAD_SHA": commit,
        "GIT_COMMIT": commit,
        "GITHUB_REPOSITORY": REPO,
        "RUNNER_TEMP": str(workspace),
    }


def _bash(script: str, workspace: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run a step as the runner does on Linux: the `run:` text in a script file, `bash -e {file}` (not
    `bash -c`, which would exec its last command by itself and hide the missing `exec`)."""
    path = log.with_suffix(".sh")
    path.write_text(script)
    with open(log, "w") as out:
        return subprocess.Popen(
            ["bash", "-e", str(path)],
            cwd=workspace,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the runner's process group for the step
        )


def _running_job(sm, pr: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job in sm.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]:
            tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
            if tags.get("scl-delay:pr") == pr:
                return job["TrainingJobName"]
        time.sleep(0.2)
    pytest.fail(f"no InProgress training job for PR {pr} within {timeout_s} s")


def _logged(log: Path, needle: str, timeout_s: float = 60) -> None:
    """Wait for the launcher to say it created the job: a signal during CreateTrainingJob itself is the
    window the `if: cancelled()` clean-up step exists for (the second test)."""
    deadline = time.monotonic() + timeout_s
    while needle not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert needle in log.read_text(), log.read_text()[-3000:]


def _ended(sm, name: str, timeout_s: float = 150) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if status not in ("InProgress", "Stopping"):
            return status
        time.sleep(0.2)
    return status


def _commit(ecr) -> str:
    commit = os.urandom(20).hex()
    push_image(ecr, commit)
    return commit


def test_the_execd_launcher_stops_its_own_job_when_the_runner_signals_the_shell(
    sm, ecr, infra, training_data, workspace, tmp_path
):
    pr, commit = str(7000 + os.getpid() % 1000), _commit(ecr)
    env = _step_env(workspace, infra, training_data, pr, commit)
    step = _bash(_step("training_job.py"), workspace, env, tmp_path / "train.log")
    try:
        job = _running_job(sm, pr)
        _logged(tmp_path / "train.log", f"created training job {job}")
        os.kill(step.pid, signal.SIGTERM)  # the shell's pid: with exec, that is Python
        step.wait(timeout=60)
        assert _ended(sm, job) == "Stopped", (tmp_path / "train.log").read_text()[-3000:]
        assert f"stopping training job {job}" in (tmp_path / "train.log").read_text()
    finally:
        if step.poll() is None:
            os.killpg(step.pid, signal.SIGKILL)


def test_without_exec_the_job_outlives_the_launcher_and_the_clean_up_step_stops_it(
    sm, ecr, infra, training_data, workspace, tmp_path, pr_role_env
):
    pr, commit = str(8000 + os.getpid() % 1000), _commit(ecr)
    env = _step_env(workspace, infra, training_data, pr, commit)
    old_step = _step("training_job.py").replace("exec .venv/bin/python", ".venv/bin/python")
    step = _bash(old_step, workspace, env, tmp_path / "train.log")
    try:
        job = _running_job(sm, pr)
        os.kill(step.pid, signal.SIGTERM)  # the shell dies; Python never hears of it
        step.wait(timeout=30)
        time.sleep(1)
        os.killpg(step.pid, signal.SIGKILL)  # the runner then kills what is left of the step
        time.sleep(1)
        assert sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "InProgress"
    finally:
        try:
            os.killpg(step.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # The clean-up step runs with the PR role's credentials: its policy must let it find and stop the job.
    clean_up_env = {**env, **pr_role_env}
    clean_up = _bash(_step("stop-training-jobs"), workspace, clean_up_env, tmp_path / "clean-up.log")
    assert clean_up.wait(timeout=120) == 0, (tmp_path / "clean-up.log").read_text()
    assert _ended(sm, job) == "Stopped"
    assert job in (tmp_path / "clean-up.log").read_text()
