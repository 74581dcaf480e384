"""A local SageMaker training backend: what moto skips when it marks a training job Completed at once.

For every CreateTrainingJob recorded in moto (the hook ``install`` runs inside the moto server process):
lay out ``/opt/ml`` exactly as SageMaker does (config JSONs, channel data downloaded from moto's S3), really
run ``train`` (``container/train``, or any command in ``$SCL_LOCAL_TRAIN_COMMAND``, e.g. a container
engine), stream its output to CloudWatch Logs, scrape metrics from it with the job's own MetricDefinitions
(the regexes training_job.py sent, so they are tested), upload ``model.tar.gz`` / ``output.tar.gz`` to
``{S3OutputPath}/{job}/output/``, and move the job through InProgress -> Completed / Failed / Stopped with
SecondaryStatusTransitions and FailureReason (the first 1,024 characters of ``/opt/ml/output/failure``).
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRAIN = ROOT / "container" / "train"
# shlex string; {opt_ml} and {image} are substituted, e.g. "podman run --rm -v {opt_ml}:/opt/ml {image} train"
TRAIN_COMMAND_ENV = "SCL_LOCAL_TRAIN_COMMAND"
FAILURE_LIMIT = 1024
SIGTERM_GRACE_S = 120
# job name -> its running `train` process, and the jobs StopTrainingJob was called for
_RUNNING: dict[str, subprocess.Popen] = {}
_STOP_REQUESTED: set[str] = set()


@dataclass
class TrainingOutcome:
    status: str  # Completed | Failed | Stopped
    secondary_status: str
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    seconds: int = 0
    lines: list[str] = field(default_factory=list)


def scrape_metrics(lines: Iterable[str], definitions: list[Mapping[str, str]]) -> dict[str, float]:
    """SageMaker's rule: each regex is applied to each log line; the first group must parse as a number;
    the last value seen is the final one."""
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    found: dict[str, float] = {}
    for line in lines:
        for name, regex in compiled:
            m = regex.search(line)
            if m:
                try:
                    found[name] = float(m.group(1))
                except (IndexError, ValueError):
                    pass
    return found


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def lay_out_opt_ml(root: Path, job: Mapping, s3) -> None:
    """The tree SageMaker mounts: input/config/*.json, input/data/<channel>/..., model/, output/."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    channels = {}
    for channel in job.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"]["S3DataSource"]
        bucket, prefix = _split_s3(source["S3Uri"])
        target = root / "input" / "data" / name
        target.mkdir(parents=True, exist_ok=True)
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
        for key in keys:
            relative = key[len(prefix) :].lstrip("/") or Path(key).name
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target / relative))
        channels[name] = {
            "ContentType": channel.get("ContentType", ""),
            "TrainingInputMode": channel.get("InputMode", "File"),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": "None",
        }
    hosts = [f"algo-{i + 1}" for i in range(job.get("ResourceConfig", {}).get("InstanceCount", 1))]
    (config / "hyperparameters.json").write_text(json.dumps(job.get("HyperParameters") or {}))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": hosts[0], "hosts": hosts, "network_interface_name": "eth0"})
    )
    for sub in ("model", "output/data", "output/intermediate"):
        (root / sub).mkdir(parents=True, exist_ok=True)


def _tar_gz(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def train_command(opt_ml: Path, image: str) -> list[str]:
    template = os.environ.get(TRAIN_COMMAND_ENV)
    if template:
        return [part.format(opt_ml=opt_ml, image=image) for part in shlex.split(template)]
    return [str(DEFAULT_TRAIN)]


class _LogWriter:
    def __init__(self, logs, job_name: str):
        self.logs, self.stream = logs, f"{job_name}/algo-1-{int(time.time())}"
        self.buffer: list[dict] = []
        self.last_flush = time.monotonic()
        if logs is None:
            return
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self.stream)

    def add(self, line: str) -> None:
        self.buffer.append({"timestamp": int(time.time() * 1000), "message": line})
        if len(self.buffer) >= 100 or time.monotonic() - self.last_flush > 0.5:
            self.flush()

    def flush(self) -> None:
        if self.logs is not None and self.buffer:
            self.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=self.stream, logEvents=self.buffer)
        self.buffer, self.last_flush = [], time.monotonic()


def run_training_job(
    job: Mapping,
    s3,
    logs,
    workdir: Path,
    on_status: Callable[[str, str], None] = lambda status, message: None,
) -> TrainingOutcome:
    """Run one job (a DescribeTrainingJob-shaped mapping) to the end; never raises for a job failure."""
    started = time.monotonic()
    name = job["TrainingJobName"]
    opt_ml = workdir / name
    on_status("Downloading", "Downloading input data")
    lay_out_opt_ml(opt_ml, job, s3)
    on_status("Training", "Training image download completed. Training in progress.")
    # One OpenMP thread unless told otherwise: local jobs share the machine (with each other and with tests),
    # and XGBoost's spinning OpenMP threads then slow a fit down 100x (measured: 30 s vs 0.2 s on 2 busy
    # cores).
    env = {
        "OMP_NUM_THREADS": "1",
        **os.environ,
        **(job.get("Environment") or {}),
        "OPT_ML_DIR": str(opt_ml),
        "TRAINING_JOB_NAME": name,
        "TRAINING_JOB_ARN": job.get("TrainingJobArn", ""),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = train_command(opt_ml, job["AlgorithmSpecification"]["TrainingImage"])
    max_runtime = job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
    writer = _LogWriter(logs, name)
    lines: list[str] = []
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    timer = threading.Timer(max_runtime, proc.terminate)
    timer.start()
    _RUNNING[name] = proc
    if name in _STOP_REQUESTED:  # stopped while its data was downloading
        proc.terminate()
    try:
        for raw in proc.stdout or ():
            line = raw.rstrip("\n")
            lines.append(line)
            writer.add(line)
        code = proc.wait(timeout=SIGTERM_GRACE_S)
    finally:
        _RUNNING.pop(name, None)
        timer.cancel()
        writer.flush()
    timed_out = time.monotonic() - started >= max_runtime
    metrics = scrape_metrics(lines, job["AlgorithmSpecification"].get("MetricDefinitions", []))
    bucket, prefix = _split_s3(f"{job['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output")
    on_status("Uploading", "Uploading generated training model")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/output.tar.gz", Body=_tar_gz(opt_ml / "output" / "data"))
    seconds = max(1, int(time.monotonic() - started))
    if name in _STOP_REQUESTED:  # StopTrainingJob: SIGTERM, the model is kept if train saved one
        return TrainingOutcome("Stopped", "Stopped", None, metrics, code, seconds, lines)
    if code == 0 and not timed_out:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/model.tar.gz", Body=_tar_gz(opt_ml / "model"))
        return TrainingOutcome("Completed", "Completed", None, metrics, code, seconds, lines)
    if timed_out:
        return TrainingOutcome(
            "Stopped",
            "MaxRuntimeExceeded",
            "Training job reached MaxRuntimeInSeconds",
            metrics,
            code,
            seconds,
            lines,
        )
    failure = opt_ml / "output" / "failure"
    text = failure.read_text(encoding="utf-8", errors="replace") if failure.is_file() else ""
    reason = f"AlgorithmError: {text or f'train exited with code {code} and wrote no failure file'}"
    return TrainingOutcome("Failed", "Failed", reason[:FAILURE_LIMIT], metrics, code, seconds, lines)


# ------------------------------------------------------------------------------ the hook inside moto's server


def install(endpoint_url: str, workdir: Path) -> None:
    """Make moto's CreateTrainingJob start a real local run instead of completing at once."""
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerResponse, "_scl_training_backend", False):
        return
    original = SageMakerResponse.create_training_job

    def create_training_job(self):
        spec = copy.deepcopy(self._get_param("AlgorithmSpecification") or {})
        environment = self._get_param("Environment") or {}
        result = original(self)
        job = self.sagemaker_backend.training_jobs[self._get_param("TrainingJobName")]
        # moto overwrites MetricDefinitions with a canned one and drops Environment: keep what was sent
        job.algorithm_specification["MetricDefinitions"] = spec.get("MetricDefinitions", [])
        job.environment = environment
        now = datetime.now(UTC)
        job.training_job_status, job.secondary_status = "InProgress", "Starting"
        job.secondary_status_transitions = [
            {"Status": "Starting", "StartTime": now, "StatusMessage": "Preparing the instances for training"}
        ]
        job.final_metric_data_list, job.training_end_time = [], None
        region = self.sagemaker_backend.region_name
        threading.Thread(
            target=_run_in_background,
            args=(job, region, endpoint_url, workdir),
            name=f"train-{job.training_job_name}",
            daemon=True,
        ).start()
        return result

    def stop_training_job(self):
        name = self._get_param("TrainingJobName")
        job = self.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message="Requested resource not found.")
        if job.training_job_status != "InProgress":
            raise ValidationError(
                message=f"The job status is {job.training_job_status}: only InProgress jobs stop"
            )
        job.training_job_status, job.secondary_status = "Stopping", "Stopping"
        _STOP_REQUESTED.add(name)
        proc = _RUNNING.get(name)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SageMaker sends SIGTERM, then 120 s later SIGKILL
        return EmptyResult()

    SageMakerResponse.create_training_job = create_training_job  # type: ignore[method-assign]
    SageMakerResponse.stop_training_job = stop_training_job  # type: ignore[attr-defined]
    SageMakerResponse._scl_training_backend = True  # type: ignore[attr-defined]


def _job_credentials(job, region: str) -> dict[str, str]:
    """The job reads its data and writes its artifacts as its execution role, as on SageMaker, so that
    under enforced IAM the role's S3 grants are what is tested. A role that does not exist in moto's IAM
    (tests that never applied infra/) falls back to the local admin user: lenient."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    from .iam_enforcement import ADMIN_USER

    account = job.arn.split(":")[4]
    iam = iam_backends[account]["aws"]
    role_name = job.role_arn.rsplit("/", 1)[-1]
    if any(role.name == role_name for role in iam.roles.values()):
        assumed = sts_backends[account]["aws"].assume_role(
            region_name=region,
            role_session_name=job.training_job_name[:64],
            role_arn=job.role_arn,
            policy="",
            duration=3600,
            external_id="",
        )
        return {
            "aws_access_key_id": assumed.access_key_id,
            "aws_secret_access_key": assumed.secret_access_key,
            "aws_session_token": assumed.session_token,
        }
    admin = iam.users.get(ADMIN_USER)
    if admin is not None and admin.access_keys:
        key = admin.access_keys[0]
        return {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _run_in_background(job, region: str, endpoint_url: str, workdir: Path) -> None:
    import boto3

    kwargs = {"endpoint_url": endpoint_url, "region_name": region, **_job_credentials(job, region)}
    s3, logs = boto3.client("s3", **kwargs), boto3.client("logs", **kwargs)

    def on_status(status: str, message: str) -> None:
        now = datetime.now(UTC)
        if job.secondary_status_transitions:
            job.secondary_status_transitions[-1].setdefault("EndTime", now)
        job.secondary_status_transitions.append(
            {"Status": status, "StartTime": now, "StatusMessage": message}
        )
        job.secondary_status = status
        job.last_modified_time = now

    described = {
        "TrainingJobName": job.training_job_name,
        "TrainingJobArn": job.arn,
        "HyperParameters": job.hyper_parameters,
        "AlgorithmSpecification": job.algorithm_specification,
        "InputDataConfig": job.input_data_config,
        "OutputDataConfig": job.output_data_config,
        "ResourceConfig": job.resource_config,
        "StoppingCondition": job.stopping_condition or {},
        "Environment": job.environment,
    }
    try:
        outcome = run_training_job(described, s3, logs, Path(workdir), on_status)
    except Exception as e:  # noqa: BLE001 - a backend bug must still end the job, visibly
        outcome = TrainingOutcome("Failed", "Failed", f"InternalServerError: local training backend: {e!r}")
        print(f"local training backend: {job.training_job_name}: {e!r}", file=sys.stderr, flush=True)
    now = datetime.now(UTC)
    on_status(
        outcome.secondary_status,
        {
            "Completed": "Training job completed",
            "Failed": "Training job failed",
            "Stopped": "Training job stopped",
        }.get(outcome.status, outcome.status),
    )
    job.secondary_status_transitions[-1]["EndTime"] = now
    job.final_metric_data_list = [
        {"MetricName": k, "Value": v, "Timestamp": now} for k, v in outcome.metrics.items()
    ]
    job.failure_reason = outcome.failure_reason
    job.training_end_time = now
    job.training_time_in_seconds = job.billable_time_in_seconds = outcome.seconds
    job.training_job_status = outcome.status
