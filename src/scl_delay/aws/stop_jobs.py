"""Stop a pull request's running training jobs, found by their tags: the clean-up of a cancelled workflow run.

GitHub signals only the step's shell when a run is cancelled, so pr-train.yml ``exec``s training_job.py (which
stops its own job on SIGTERM) and runs this from an ``if: cancelled()`` step as well, for a job launched just
before the signal or a launcher killed before it could stop it.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from . import names
from .ownership import error_code, paged


def stop_training_jobs(
    sagemaker, pr_number: str | int, repo: str | None, commit: str | None = None
) -> list[str]:
    """Stop every InProgress job tagged with this PR (and repository, and commit when given); their names."""
    wanted = {names.TAG_PR: str(pr_number), names.TAG_REPO: repo, names.TAG_COMMIT: commit}
    wanted = {k: v for k, v in wanted.items() if v}
    stopped = []
    for job in paged(sagemaker.list_training_jobs, "TrainingJobSummaries", StatusEquals="InProgress"):
        tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
        if any(tags.get(k) != v for k, v in wanted.items()):
            continue
        try:
            sagemaker.stop_training_job(TrainingJobName=job["TrainingJobName"])
        except ClientError as e:  # it finished between the list and the stop: nothing left to stop
            if error_code(e) != "ValidationException":
                raise
            continue
        stopped.append(job["TrainingJobName"])
    return stopped
