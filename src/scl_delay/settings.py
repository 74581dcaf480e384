"""Process settings, read once from the environment into frozen dataclasses.

Only entry points call ``from_env()``; everything else receives the object. Precedence lives here:
SageMaker script-mode variables (``SM_*``) win over paths derived from ``OPT_ML_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import SettingsError

OPT_ML_DIR = "OPT_ML_DIR"
SM_MODEL_DIR = "SM_MODEL_DIR"
SM_CHANNEL_TRAINING = "SM_CHANNEL_TRAINING"
SM_CHANNEL_VALIDATION = "SM_CHANNEL_VALIDATION"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
# SageMaker's variable wins; PORT is what Cloud Run, ECS task definitions and most platforms set
BIND_PORT = ("SAGEMAKER_BIND_TO_PORT", "PORT")
WORKERS = ("MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS")
TIMEOUT = ("MODEL_SERVER_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT")
MB = 1024 * 1024
AWS_MAX_PAYLOAD_MB = 100  # MaxPayloadInMB, and MaxConcurrentTransforms x MaxPayloadInMB, at most 100
MAX_PAYLOAD_MB = ("SAGEMAKER_MAX_PAYLOAD_IN_MB",)  # 0: no limit (AWS: arbitrarily large, chunked bodies)
UNKNOWN_POLICY = ("SCL_UNKNOWN_POLICY",)  # score (default) or reject values outside the vocabulary
ON_ERROR = ("SCL_ON_ERROR",)  # record (default: an error entry in the invalid record's place) or fail
INFERENCE_OUTPUT = ("SAGEMAKER_INFERENCE_OUTPUT",)
PREDICTION_CACHE = ("SCL_PREDICTION_CACHE_SIZE",)  # records per worker; 0 turns the cache off
WORKER_CLASS = ("SCL_WORKER_CLASS",)  # gunicorn worker class; the default was chosen by measurement
WORKER_THREADS = ("SCL_WORKER_THREADS",)
OUTPUT_CHOICES = ("probability", "decision")  # what each prediction may carry
UNKNOWN_CHOICES = ("score", "reject")
ON_ERROR_CHOICES = ("record", "fail")
OUTPUT_ALIASES = {
    "both": OUTPUT_CHOICES,
    "all": OUTPUT_CHOICES,
    "predicted_label": ("decision",),
    "label": ("decision",),
    "probabilities": ("probability",),
}
DEFAULT_OPT_ML = "/opt/ml"


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _choice(env: Mapping[str, str], names: tuple[str, ...], choices: tuple[str, ...]) -> str:
    found = _first(env, names)
    if found is None:
        return choices[0]
    if found[1].lower() not in choices:
        raise SettingsError(f"{found[0]}={found[1]!r}: expected one of {', '.join(choices)}")
    return found[1].lower()


def _int(env: Mapping[str, str], names: tuple[str, ...], default: int, minimum: int = 1) -> int:
    found = _first(env, names)
    if found is None:
        return default
    name, value = found
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r}: expected a whole number") from None
    if number < minimum:
        raise SettingsError(f"{name}={value!r}: must be at least {minimum}")
    return number


@dataclass(frozen=True)
class TrainSettings:
    """Where `train` reads and writes, following SageMaker's /opt/ml layout."""

    opt_ml: Path
    model_dir: Path
    training_channel: Path
    validation_channel: Path
    output_dir: Path  # output/failure goes here
    output_data_dir: Path

    @property
    def config_dir(self) -> Path:
        return self.opt_ml / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TrainSettings:
        opt_ml = Path(env.get(OPT_ML_DIR) or DEFAULT_OPT_ML)
        data = opt_ml / "input" / "data"
        return cls(
            opt_ml=opt_ml,
            model_dir=Path(env.get(SM_MODEL_DIR) or opt_ml / "model"),
            training_channel=Path(env.get(SM_CHANNEL_TRAINING) or data / "training"),
            validation_channel=Path(env.get(SM_CHANNEL_VALIDATION) or data / "validation"),
            output_dir=opt_ml / "output",
            output_data_dir=Path(env.get(SM_OUTPUT_DATA_DIR) or opt_ml / "output" / "data"),
        )


def parse_output(value: str) -> tuple[str, ...]:
    """``probability``, ``decision``, ``both`` or a comma list (``probability,decision``) -> ordered choices.

    Raises ``ValueError`` naming the bad part; callers wrap it in their own error type.
    """
    chosen: list[str] = []
    for part in (p.strip().lower() for p in value.split(",")):
        names = OUTPUT_ALIASES.get(part, (part,) if part in OUTPUT_CHOICES else None)
        if names is None:
            raise ValueError(
                f"unknown output {part!r}; expected probability, decision, both "
                f"or a comma list of probability,decision"
            )
        chosen += [n for n in names if n not in chosen]
    return tuple(n for n in OUTPUT_CHOICES if n in chosen)


def transform_limits(workers: int, max_body_bytes: int | None) -> tuple[int, int]:
    """See ``ServeSettings.transform_limits``."""
    if max_body_bytes is None:
        return workers, 0
    payload_mb = max(1, min(AWS_MAX_PAYLOAD_MB, max_body_bytes // MB))
    return max(1, min(workers, AWS_MAX_PAYLOAD_MB // payload_mb)), payload_mb


@dataclass(frozen=True)
class ServeSettings:
    """How `serve` binds, scales and bounds requests.

    ``timeout_s``: gunicorn's worker timeout in seconds (``MODEL_SERVER_TIMEOUT``; a worker silent that long
    is replaced; gthread does not cut a slow request on a live worker off); ``max_body_bytes``:
    request body limit (``SAGEMAKER_MAX_PAYLOAD_IN_MB``, in MB, default 6; 0, as SageMaker passes for
    ``MaxPayloadInMB=0``, means no limit: None); ``inference_output``: default
    per-record output (``SAGEMAKER_INFERENCE_OUTPUT``: probability, decision or both);
    ``prediction_cache_size``: predictions remembered per worker, keyed by the record's model inputs.
    """

    model_dir: Path
    port: int
    workers: int
    timeout_s: int
    max_body_bytes: int | None
    inference_output: tuple[str, ...] = OUTPUT_CHOICES
    unknown: str = "score"
    on_error: str = "record"
    prediction_cache_size: int = 65536
    worker_class: str = "gthread"
    threads: int = 3  # from_env: one more than the transforms Batch Transform may run at once (/ping's)

    def transform_limits(self) -> tuple[int, int]:
        """(MaxConcurrentTransforms, MaxPayloadInMB) within AWS's limits: MaxPayloadInMB <= 100, and their
        product <= 100; (workers, 0) when there is no body limit (0: unlimited, chunked bodies)."""
        return transform_limits(self.workers, self.max_body_bytes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServeSettings:
        opt_ml = Path(env.get(OPT_ML_DIR) or DEFAULT_OPT_ML)
        found = _first(env, INFERENCE_OUTPUT)
        output: tuple[str, ...] = OUTPUT_CHOICES
        if found is not None:
            try:
                output = parse_output(found[1])
            except ValueError as e:
                raise SettingsError(f"{found[0]}={found[1]!r}: {e}") from None
        worker_class = _first(env, WORKER_CLASS)
        workers = _int(env, WORKERS, default=os.cpu_count() or 1)
        max_body_bytes = _int(env, MAX_PAYLOAD_MB, default=6, minimum=0) * MB or None
        # gunicorn does not balance connections: every concurrent transform may land on one worker, and a
        # thread must stay free there for /ping.
        concurrent_transforms = transform_limits(workers, max_body_bytes)[0]
        return cls(
            model_dir=Path(env.get(SM_MODEL_DIR) or opt_ml / "model"),
            port=_int(env, BIND_PORT, default=8080),
            workers=workers,
            timeout_s=_int(env, TIMEOUT, default=60),
            max_body_bytes=max_body_bytes,
            inference_output=output,
            unknown=_choice(env, UNKNOWN_POLICY, UNKNOWN_CHOICES),
            on_error=_choice(env, ON_ERROR, ON_ERROR_CHOICES),
            prediction_cache_size=_int(env, PREDICTION_CACHE, default=65536, minimum=0),
            worker_class=worker_class[1] if worker_class else "gthread",
            threads=_int(env, WORKER_THREADS, default=concurrent_transforms + 1),
        )
