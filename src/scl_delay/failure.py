"""`train`'s failure output: ``output/failure`` with the cause first, and SIGTERM turned into an error.

Kept apart from ``training.py`` (pandas, xgboost: ~2 s to import) so that the entry point can install the
SIGTERM handler before those imports: PID 1 in a container ignores a SIGTERM it has no handler for.
"""

from __future__ import annotations

import sys
import traceback

from .errors import InputError
from .settings import TrainSettings

FAILURE_LIMIT_CHARS = 1024  # what reaches DescribeTrainingJob's FailureReason


class TrainingInterrupted(Exception):
    """SIGTERM arrived: StopTrainingJob or MaxRuntimeInSeconds. SageMaker then gives 120 s."""


def raise_on_sigterm(signum, frame):
    raise TrainingInterrupted(
        "training stopped by SIGTERM (StopTrainingJob or the stopping condition); no artifact was written"
    )


def write_failure(settings: TrainSettings, error: BaseException) -> str:
    """Cause first: only the first 1,024 characters reach the job's FailureReason."""
    if isinstance(error, TrainingInterrupted):
        reason = f"Interrupted: {error}"
    elif isinstance(error, InputError):
        reason = f"{type(error).__name__}: {error}"
    else:
        reason = f"InternalError: {error!r}\n\n{traceback.format_exc()}"
    try:
        settings.failure_file.parent.mkdir(parents=True, exist_ok=True)
        settings.failure_file.write_text(reason, encoding="utf-8")
    except OSError as e:
        print(f"could not write {settings.failure_file}: {e}", file=sys.stderr)
    return reason


def fail(settings: TrainSettings, error: BaseException) -> int:
    """Write the failure file, say why on stderr; the exit code: 2 for bad input, 1 otherwise."""
    reason = write_failure(settings, error)
    print(f"training failed: {reason[:FAILURE_LIMIT_CHARS]}", file=sys.stderr, flush=True)
    return 2 if isinstance(error, InputError) else 1
