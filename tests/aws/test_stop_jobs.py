"""The cancellation clean-up: ``github_loop stop-training-jobs`` stops this PR's running jobs, found by tag.

Real moto server over HTTP with the local training backend, so the jobs are really running (``train``
processes) when the stop arrives; StopTrainingJob is the backend's (moto 5.2 does not implement it): it
SIGTERMs the process as SageMaker does. The jobs run as the training role of infra/scl-delay.yaml applied
to the IAM-enforcing moto server. More lenient than AWS: the stop is immediate (AWS passes through
``Stopping`` for up to 120 s); the PR role running the clean-up is in test_cancellation.
"""

from __future__ import annotations

import os
import time

from scl_delay.aws import names
from scl_delay.aws.stop_jobs import stop_training_jobs
from scl_delay.github_loop import main as github_loop_main

from . import loop_fixtures
from .aws_helpers import IMAGE, unique

training_data = loop_fixtures.training_data

REPO = "acme/scl-delay"


def _launch(sm, infra: dict, data: str, pr: str, commit: str, repo: str = REPO) -> str:
    name = unique(f"scl-delay-pr{pr}-{commit[:8]}")
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=infra["TrainingExecutionRoleArn"],
        HyperParameters={"num_round": "400", "early_stopping_rounds": "0"},
        InputDataConfig=[
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": data,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"{infra['TrainingS3Prefix']}/pr-{pr}"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        Tags=names.tags({names.TAG_PR: pr, names.TAG_REPO: repo, names.TAG_COMMIT: commit}),
    )
    return name


def _status(sm, name: str) -> str:
    return sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]


def _wait_ended(sm, name: str, timeout_s: float = 150) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := _status(sm, name)) in ("InProgress", "Stopping") and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


def test_only_the_cancelled_runs_jobs_are_stopped_and_they_end_stopped(sm, infra, training_data):
    commit, newer = "a" * 40, "b" * 40
    ours = _launch(sm, infra, training_data, "7", commit)
    same_pr_newer_push = _launch(sm, infra, training_data, "7", newer)
    other_pr = _launch(sm, infra, training_data, "8", commit)
    other_repo = _launch(sm, infra, training_data, "7", commit, repo="someone/else")
    try:
        assert {_status(sm, n) for n in (ours, same_pr_newer_push, other_pr, other_repo)} == {"InProgress"}
        stopped = stop_training_jobs(sm, pr_number=7, repo=REPO, commit=commit)
        assert stopped == [ours]
        assert _wait_ended(sm, ours) == "Stopped"
        for name in (same_pr_newer_push, other_pr, other_repo):
            assert _status(sm, name) == "InProgress", f"{name} belongs to another run and must keep running"
        # Stopping again finds nothing: the stopped job is no longer InProgress.
        assert stop_training_jobs(sm, pr_number=7, repo=REPO, commit=commit) == []
    finally:
        for name in (same_pr_newer_push, other_pr, other_repo):
            if _status(sm, name) == "InProgress":
                sm.stop_training_job(TrainingJobName=name)


def test_the_cli_step_stops_the_prs_jobs_and_writes_the_job_summary(sm, infra, training_data, tmp_path):
    commit = "c" * 40
    job = _launch(sm, infra, training_data, "9", commit)
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_STEP_SUMMARY": str(summary),
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
    }
    assert github_loop_main(["stop-training-jobs", "--pr", "9", "--commit", commit], env) == 0
    assert _wait_ended(sm, job) == "Stopped"
    assert job in summary.read_text()
