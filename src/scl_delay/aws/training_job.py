"""Launch a SageMaker training job for this commit, follow it, and collect the PR report.

boto3 only (see README, "Why boto3"). ``run`` is the one call ``training_job.py`` makes; clients are passed
in, so tests point them at a moto server through ``AWS_ENDPOINT_URL`` and nothing else changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from ..errors import InputError
from ..metric_lines import metric_definitions, metric_values
from . import live_record, names
from .report_pr import render_report

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = {"Completed", "Failed", "Stopped"}
ARTIFACT_FILES = {"metrics.json", "report.md", "metadata.json", "pr_curve.png", "confusion_matrix.png"}
IMAGE_FILES = ("pr_curve.png", "confusion_matrix.png")


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a launch needs, validated before the first AWS call."""

    region: str
    image_uri: str
    role_arn: str
    data: str  # s3://... prefix or object, or a local file uploaded first
    output_s3: str  # S3OutputPath: artifacts land in <output_s3>/<job>/output/
    hyperparameters: dict[str, str]  # SageMaker wire form (strings), already validated
    commit: str
    validation_data: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_gb: int = 10
    max_runtime_s: int = 3600
    pr_number: str | None = None
    repo: str | None = None
    state_s3: str | None = None
    job_name: str | None = None
    poll_s: float = 30.0
    wait_timeout_s: float = 4 * 3600
    environment: dict[str, str] = field(default_factory=dict)


class TrainingJobFailedError(Exception):
    """The job ended Failed or Stopped; the message is SageMaker's FailureReason."""


def upload_if_local(s3, data: str, output_s3: str, channel: str, say: Callable[[str], None]) -> str:
    """A local file goes to ``<output_s3>/input/<sha256[:12]>/<name>`` (content-addressed: re-runs reuse it)."""
    if data.startswith("s3://"):
        return data
    path = Path(data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    uri = names.join_s3(output_s3, "input", digest, path.name)
    bucket, key = names.parse_s3_uri(uri)
    say(f"uploading {path} to {uri} (channel {channel})")
    s3.upload_file(str(path), bucket, key)
    return uri


def _channel(name: str, uri: str) -> dict:
    return {
        "ChannelName": name,
        "ContentType": "text/csv",
        "InputMode": "File",
        "CompressionType": "None",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def create_request(
    spec: TrainingJobSpec, job_name: str, training_uri: str, validation_uri: str | None
) -> dict:
    """The CreateTrainingJob parameters. Pure, so the exact request is testable without AWS."""
    channels = [_channel("training", training_uri)]
    if validation_uri:
        channels.append(_channel("validation", validation_uri))
    return {
        "TrainingJobName": job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "HyperParameters": dict(spec.hyperparameters),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": spec.output_s3.rstrip("/")},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_s},
        "Environment": {"SCL_DELAY_GIT_COMMIT": spec.commit, **spec.environment},
        "Tags": names.tags(
            {
                names.TAG_MANAGED_BY: "training_job.py",
                names.TAG_COMMIT: spec.commit,
                names.TAG_PR: spec.pr_number,
                names.TAG_REPO: spec.repo,
            }
        ),
    }


def launch(clients, spec: TrainingJobSpec, say: Callable[[str], None] = print) -> str:
    job_name = spec.job_name or names.training_job_name(spec.commit, spec.pr_number)
    training_uri = upload_if_local(clients.s3, spec.data, spec.output_s3, "training", say)
    validation_uri = (
        upload_if_local(clients.s3, spec.validation_data, spec.output_s3, "validation", say)
        if spec.validation_data
        else None
    )
    clients.sagemaker.create_training_job(**create_request(spec, job_name, training_uri, validation_uri))
    say(
        f"created training job {job_name} ({spec.instance_count} x {spec.instance_type}, image {spec.image_uri})"
    )
    return job_name


class _LogTail:
    """CloudWatch lines of the job, printed once each; silent when the log group is not there (yet)."""

    def __init__(self, logs, job_name: str, say: Callable[[str], None]):
        self.logs, self.job_name, self.say = logs, job_name, say
        self.tokens: dict[str, str] = {}

    def poll(self) -> None:
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job_name}/"
            )["logStreams"]
            for stream in streams:
                name = stream["logStreamName"]
                while True:
                    kwargs = {"logGroupName": LOG_GROUP, "logStreamName": name, "startFromHead": True}
                    if name in self.tokens:
                        kwargs["nextToken"] = self.tokens[name]
                    page = self.logs.get_log_events(**kwargs)
                    for event in page["events"]:
                        self.say(f"  | {event['message'].rstrip()}")
                    done = page.get("nextForwardToken") in (None, self.tokens.get(name)) or not page["events"]
                    self.tokens[name] = page.get("nextForwardToken", self.tokens.get(name))
                    if done:
                        break
        except ClientError as e:  # no log group yet, or no permission: progress still shows statuses
            if e.response["Error"]["Code"] not in ("ResourceNotFoundException", "AccessDeniedException"):
                raise


def wait(
    clients,
    job_name: str,
    poll_s: float,
    timeout_s: float,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll DescribeTrainingJob until a terminal status, printing status transitions and log lines.

    Same acceptors as botocore's ``training_job_completed_or_stopped`` waiter (Completed/Stopped/Failed), but
    a waiter is a blind loop, and the PR log should show SecondaryStatusTransitions and the job's own output.
    """
    deadline = time.monotonic() + timeout_s
    seen_transitions, status = 0, None
    tail = _LogTail(clients.logs, job_name, say)
    while True:
        desc = clients.sagemaker.describe_training_job(TrainingJobName=job_name)
        if desc["TrainingJobStatus"] != status:
            status = desc["TrainingJobStatus"]
            say(f"status {status}")
        transitions = desc.get("SecondaryStatusTransitions", [])
        for t in transitions[seen_transitions:]:
            say(f"  {t['Status']}: {t.get('StatusMessage', '')}".rstrip(": "))
        seen_transitions = max(seen_transitions, len(transitions))
        tail.poll()
        if status in TERMINAL:
            tail.poll()
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"training job {job_name} still {status} after {timeout_s:.0f} s "
                f"(it keeps running; stop it with aws sagemaker stop-training-job)"
            )
        sleep(poll_s)


def read_model_artifact(s3, uri: str) -> dict[str, bytes]:
    """The small files of model.tar.gz (metrics, report, plots); the booster is not needed here."""
    bucket, key = names.parse_s3_uri(uri)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            content = tar.extractfile(member) if member.isfile() and name in ARTIFACT_FILES else None
            if content is not None:
                files[name] = content.read()
    return files


def collect(clients, desc: Mapping, spec: TrainingJobSpec) -> tuple[dict, dict[str, bytes]]:
    """training_result.json content and the artifact files, for a finished job."""
    job = desc["TrainingJobName"]
    output_path = desc["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    result = {
        "job_name": job,
        "job_arn": desc.get("TrainingJobArn"),
        "status": desc["TrainingJobStatus"],
        "failure_reason": desc.get("FailureReason"),
        "image": desc["AlgorithmSpecification"]["TrainingImage"],
        "hyperparameters": desc.get("HyperParameters", {}),
        "commit": spec.commit,
        "pr_number": spec.pr_number,
        "instance_type": desc["ResourceConfig"]["InstanceType"],
        "instance_count": desc["ResourceConfig"]["InstanceCount"],
        "training_seconds": desc.get("TrainingTimeInSeconds"),
        "billable_seconds": desc.get("BillableTimeInSeconds"),
        "console_url": f"https://{spec.region}.console.aws.amazon.com/sagemaker/home?region={spec.region}"
        f"#/jobs/{job}",
    }
    files: dict[str, bytes] = {}
    if result["status"] != "Completed":
        return result, files
    result["model_artifact"] = desc["ModelArtifacts"]["S3ModelArtifacts"]
    result["output_artifact"] = f"{output_path}/{job}/output/output.tar.gz"
    wanted = {d["Name"] for d in desc["AlgorithmSpecification"].get("MetricDefinitions", [])}
    scraped = {
        m["MetricName"]: float(m["Value"])
        for m in desc.get("FinalMetricDataList", [])
        if m["MetricName"] in wanted
    }
    try:
        files = read_model_artifact(clients.s3, result["model_artifact"])
    except (ClientError, tarfile.TarError, OSError) as e:
        result["artifact_error"] = f"{type(e).__name__}: {e}"
    from_artifact = metric_values(json.loads(files["metrics.json"])) if "metrics.json" in files else {}
    result["final_metrics"] = {
        **from_artifact,
        **scraped,
    }  # what SageMaker scraped wins; the artifact fills gaps
    result["metric_sources"] = {
        "FinalMetricDataList": sorted(scraped),
        "metrics.json": sorted(set(from_artifact) - set(scraped)),
    }
    return result, files


def run(
    clients,
    spec: TrainingJobSpec,
    result_path: Path,
    report_path: Path,
    base_hyperparameters: Mapping[str, str] | None,
    base_label: str,
    say: Callable[[str], None] = print,
) -> int:
    """Launch, wait, collect, write training_result.json + report.md; 0 only for a Completed job."""
    job_name = launch(clients, spec, say)
    try:
        desc = wait(clients, job_name, spec.poll_s, spec.wait_timeout_s, say)
    except KeyboardInterrupt:
        say(f"interrupted: stopping training job {job_name}")
        clients.sagemaker.stop_training_job(TrainingJobName=job_name)
        raise
    result, files = collect(clients, desc, spec)
    live = None
    if spec.state_s3:
        try:
            live = live_record.read_live(clients.s3, spec.state_s3)
        except ClientError as e:  # the report still has everything else
            say(f"could not read the live model record under {spec.state_s3}: {e}")
    training_report = files.get("report.md", b"").decode("utf-8", "replace") or None
    report_path.parent.mkdir(parents=True, exist_ok=True)
    for image in IMAGE_FILES:
        if image in files:
            (report_path.parent / image).write_bytes(files[image])
    result["report_images"] = [i for i in IMAGE_FILES if i in files]
    report_path.write_text(
        render_report(result, live, base_hyperparameters, base_label, training_report), encoding="utf-8"
    )
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if result["status"] != "Completed":
        say(
            f"training job {job_name} {result['status']}: {result.get('failure_reason') or 'no FailureReason'}"
        )
        return 1
    if spec.state_s3:
        uri = live_record.training_record_uri(spec.state_s3, spec.commit)
        live_record.write_json(clients.s3, uri, result)
        say(f"recorded {job_name} for commit {spec.commit} at {uri}")
    metrics = result["final_metrics"]
    say(
        f"training job {job_name} Completed: test recall {metrics.get('test:recall', float('nan')):.4f}, "
        f"PR-AUC {metrics.get('test:pr_auc', float('nan')):.4f}; model {result['model_artifact']}"
    )
    say(f"wrote {result_path} and {report_path}")
    return 0


def check_spec(spec: TrainingJobSpec) -> None:
    """Cheap checks that need no AWS: names, URIs, files, counts."""
    problems = []
    for value, what in ((spec.output_s3, "--output-s3"), (spec.state_s3, "--state-s3")):
        if value:
            try:
                names.parse_s3_uri(value, what)
            except InputError as e:
                problems.append(str(e))
    for value, what in ((spec.data, "--data"), (spec.validation_data, "--validation-data")):
        if value and not value.startswith("s3://") and not Path(value).is_file():
            problems.append(f"{what} {value!r} is neither an s3:// URI nor an existing file")
        elif value and value.startswith("s3://"):
            try:
                names.parse_s3_uri(value, what)
            except InputError as e:
                problems.append(str(e))
    if not spec.role_arn.startswith("arn:"):
        problems.append(
            f"--role-arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {spec.role_arn!r}"
        )
    if spec.job_name:
        try:
            names.check_name(spec.job_name, "--job-name")
        except InputError as e:
            problems.append(str(e))
    if spec.instance_count < 1 or spec.volume_gb < 1 or spec.max_runtime_s < 1:
        problems.append("--instance-count, --volume-gb and --max-runtime-minutes must be positive")
    if problems:
        raise InputError("; ".join(problems))


__all__ = [
    "TrainingJobFailedError",
    "TrainingJobSpec",
    "check_spec",
    "collect",
    "create_request",
    "launch",
    "run",
    "wait",
]
