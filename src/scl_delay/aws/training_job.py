"""Launch a SageMaker training job for this commit, follow it, and collect the PR report.

boto3 only (see README, "Why boto3"). ``run`` is the one call ``training_job.py`` makes; clients are passed
in, so tests point them at a moto server through ``AWS_ENDPOINT_URL`` and nothing else changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from ..errors import InputError
from ..metric_lines import metric_definitions, metric_values
from . import names, ownership, registry
from .report_pr import render_report

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
ECR_IMAGE_RE = re.compile(
    r"^(?P<registry>(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)/"
    r"(?P<repo>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")
TERMINAL = {"Completed", "Failed", "Stopped"}
ARTIFACT_FILES = {"metrics.json", "report.md", "metadata.json", "pr_curve.png", "confusion_matrix.png"}
IMAGE_FILES = ("pr_curve.png", "confusion_matrix.png")


@dataclass(frozen=True)
class TrainingJobSpec:
    """Everything a launch needs, validated before the first AWS call. Defaults live here, and only here."""

    region: str
    image_uri: str
    role_arn: str  # the TRAINING execution role (never the serving role)
    data: str  # s3://... prefix or object, or a local file uploaded first
    output_s3: str  # the job writes only under <output_s3>/pr-<N>/ (names.job_prefix)
    hyperparameters: dict[str, str]  # SageMaker wire form (strings), already validated
    commit: str
    validation_data: str | None = None
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_gb: int = 10
    max_runtime_s: int = 3600
    spot: bool = False  # managed spot training; checkpoints under <prefix>/checkpoints/<job>/
    max_wait_s: int | None = None  # spot only: runtime + time waiting for capacity (default 2 x runtime)
    pr_number: str | None = None
    repo: str | None = None
    model_package_group: str = names.PROJECT
    endpoint_name: str = names.PROJECT  # whose live version the report compares against
    job_name: str | None = None
    poll_s: float = 30.0
    wait_timeout_s: float = 4 * 3600
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return names.job_prefix(self.output_s3, self.commit, self.pr_number)


class TrainingJobFailedError(Exception):
    """The job ended Failed or Stopped; the message is SageMaker's FailureReason."""


def upload_if_local(s3, data: str, output_s3: str, channel: str, say: Callable[[str], None]) -> str:
    """A local file goes to ``<prefix>/<sha256[:12]>/<name>`` (content-addressed: re-runs reuse it)."""
    if data.startswith("s3://"):
        return data
    path = Path(data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    uri = names.join_s3(output_s3, digest, path.name)
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
    spec: TrainingJobSpec, job_name: str, image: str, training_uri: str, validation_uri: str | None
) -> dict:
    """The CreateTrainingJob parameters. Pure, so the exact request is testable without AWS (moto keeps
    neither EnableNetworkIsolation nor the spot fields in DescribeTrainingJob)."""
    channels = [_channel("training", training_uri)]
    if validation_uri:
        channels.append(_channel("validation", validation_uri))
    stopping = {"MaxRuntimeInSeconds": spec.max_runtime_s}
    request = {
        "TrainingJobName": job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "HyperParameters": dict(spec.hyperparameters),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": spec.prefix},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_gb,
        },
        "StoppingCondition": stopping,
        # PR code runs in this container: no network but S3 channels in and the artifact out.
        "EnableNetworkIsolation": True,
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
    if spec.spot:
        request["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait_s or 2 * spec.max_runtime_s
        request["CheckpointConfig"] = {
            "S3Uri": names.join_s3(spec.prefix, "checkpoints", job_name) + "/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return request


def resolve_image(ecr, image_uri: str) -> tuple[str, str]:
    """(image by digest, digest): the job runs, and the registry records, the exact bytes pushed. A tag can
    be moved after the PR ran (or pushed first by another PR); a digest cannot."""
    m = DIGEST_RE.search(image_uri)
    if m:
        return image_uri, m.group(1)
    parsed = ECR_IMAGE_RE.match(image_uri)
    if not parsed or not parsed.group("tag"):
        raise InputError(
            f"--image-uri {image_uri!r}: give an ECR image with a tag (resolved to its digest) or an image "
            f"by digest (...@sha256:<64 hex>)"
        )
    try:
        details = ecr.describe_images(
            registryId=parsed.group("account"),
            repositoryName=parsed.group("repo"),
            imageIds=[{"imageTag": parsed.group("tag")}],
        )["imageDetails"]
    except ClientError as e:
        if ownership.is_not_found(e):
            raise InputError(f"image {image_uri} is not in ECR (push it first)") from None
        raise
    digest = details[0]["imageDigest"]
    return f"{parsed.group('registry')}/{parsed.group('repo')}@{digest}", digest


def launch(clients, spec: TrainingJobSpec, say: Callable[[str], None] = print) -> tuple[str, str]:
    """Start the job; (job name, its image by digest)."""
    job_name = spec.job_name or names.training_job_name(spec.commit, spec.pr_number)
    image, digest = resolve_image(clients.ecr, spec.image_uri)
    inputs = names.join_s3(spec.prefix, "input")
    training_uri = upload_if_local(clients.s3, spec.data, inputs, "training", say)
    validation_uri = (
        upload_if_local(clients.s3, spec.validation_data, inputs, "validation", say)
        if spec.validation_data
        else None
    )
    clients.sagemaker.create_training_job(
        **create_request(spec, job_name, image, training_uri, validation_uri)
    )
    spot = " (managed spot)" if spec.spot else ""
    say(
        f"created training job {job_name} ({spec.instance_count} x {spec.instance_type}{spot}, "
        f"image {image}); output under {spec.prefix}/"
    )
    return job_name, digest


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


def artifact_files(data: bytes) -> dict[str, bytes]:
    """The small files of a model.tar.gz (metrics, report, plots, metadata); the booster is not needed
    here."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            content = tar.extractfile(member) if member.isfile() and name in ARTIFACT_FILES else None
            if content is not None:
                files[name] = content.read()
    return files


def read_model_artifact(s3, uri: str) -> tuple[dict[str, bytes], str]:
    """(small files, sha256 of the archive): one read, so the digest registered is of the bytes read."""
    bucket, key = names.parse_s3_uri(uri)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return artifact_files(data), hashlib.sha256(data).hexdigest()


def scraped_metrics(desc: Mapping) -> dict[str, float]:
    """FinalMetricDataList restricted to our MetricDefinitions: what SageMaker scraped from the job's log."""
    wanted = {d["Name"] for d in desc["AlgorithmSpecification"].get("MetricDefinitions", [])}
    return {
        m["MetricName"]: float(m["Value"])
        for m in desc.get("FinalMetricDataList", [])
        if m["MetricName"] in wanted
    }


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
        "output_prefix": spec.prefix,
        "instance_type": desc["ResourceConfig"]["InstanceType"],
        "instance_count": desc["ResourceConfig"]["InstanceCount"],
        "training_seconds": desc.get("TrainingTimeInSeconds"),
        "billable_seconds": desc.get("BillableTimeInSeconds"),
        "console_url": f"https://{names.console_host(spec.region)}/sagemaker/home?region={spec.region}"
        f"#/jobs/{job}",
    }
    files: dict[str, bytes] = {}
    if result["status"] != "Completed":
        return result, files
    result["model_artifact"] = desc["ModelArtifacts"]["S3ModelArtifacts"]
    result["output_artifact"] = f"{output_path}/{job}/output/output.tar.gz"
    scraped = scraped_metrics(desc)
    try:
        files, result["artifact_sha256"] = read_model_artifact(clients.s3, result["model_artifact"])
    except (ClientError, tarfile.TarError, OSError) as e:
        result["artifact_error"] = f"{type(e).__name__}: {e}"
    from_artifact = metric_values(json.loads(files["metrics.json"])) if "metrics.json" in files else {}
    # what SageMaker scraped wins; the artifact fills gaps
    result["final_metrics"] = {**from_artifact, **scraped}
    result["metric_sources"] = {
        "FinalMetricDataList": sorted(scraped),
        "metrics.json": sorted(set(from_artifact) - set(scraped)),
    }
    return result, files


def register(
    clients, spec: TrainingJobSpec, result: dict, files: Mapping[str, bytes], image_digest: str, say
) -> registry.Version:
    """A versioned model package, PendingManualApproval, for a Completed job (issue 14 item 1)."""
    metrics_doc = json.loads(files.get("metrics.json", b"{}"))
    statistics = registry.statistics_document(metrics_doc)
    statistics_uri = names.join_s3(spec.prefix, "registry", result["job_name"], "model-quality.json")
    bucket, key = names.parse_s3_uri(statistics_uri)
    clients.s3.put_object(Bucket=bucket, Key=key, Body=statistics, ContentType="application/json")
    metadata_doc = json.loads(files.get("metadata.json", b"{}"))
    metadata = registry.customer_metadata(
        commit=spec.commit,
        training_job=result["job_name"],
        artifact_sha256=result["artifact_sha256"],
        dataset_sha256=metadata_doc.get("dataset_sha256"),
        pr=spec.pr_number,
        repo=spec.repo,
        metrics=result["final_metrics"],
        hyperparameters=result["hyperparameters"],
    )
    who = f"PR #{spec.pr_number}" if spec.pr_number else "no PR"
    request = registry.registration_request(
        spec.model_package_group,
        image=result["image"],
        image_digest=image_digest,
        artifact=result["model_artifact"],
        metadata=metadata,
        job_arn=result["job_arn"] or result["job_name"],
        statistics_uri=statistics_uri,
        statistics_sha256=hashlib.sha256(statistics).hexdigest(),
        description=f"{who}, commit {spec.commit}, training job {result['job_name']}",
    )
    registry.ensure_group(clients.sagemaker, spec.model_package_group, say)
    version = registry.register(clients.sagemaker, request)
    say(f"registered {version.label()} ({version.status}): {version.arn}")
    return version


def live_summary(clients, spec: TrainingJobSpec, say) -> dict | None:
    """What the report compares against: the version the endpoint serves, read from the registry."""
    try:
        version, _ = registry.live_version(clients.sagemaker, spec.endpoint_name)
    except ClientError as e:  # the report still has everything else
        say(f"could not read the live version of {spec.endpoint_name}: {e}")
        return None
    if version is None:
        return None
    return {
        "endpoint_name": spec.endpoint_name,
        "version": version.number,
        "version_label": version.label(),
        "model_package_arn": version.arn,
        "training_job": version.training_job,
        "commit": version.commit,
        "metrics": version.metrics,
        "hyperparameters": version.hyperparameters,
    }


def run(
    clients,
    spec: TrainingJobSpec,
    result_path: Path,
    report_path: Path,
    base_hyperparameters: Mapping[str, str] | None,
    base_label: str,
    say: Callable[[str], None] = print,
) -> int:
    """Launch, wait, collect, register, write training_result.json + report.md; 0 only for a Completed job."""
    job_name, image_digest = launch(clients, spec, say)
    try:
        desc = wait(clients, job_name, spec.poll_s, spec.wait_timeout_s, say)
    except KeyboardInterrupt:
        say(f"interrupted: stopping training job {job_name}")
        clients.sagemaker.stop_training_job(TrainingJobName=job_name)
        raise
    result, files = collect(clients, desc, spec)
    result["image_digest"] = image_digest
    live = live_summary(clients, spec, say)
    if base_hyperparameters is None and live and live.get("hyperparameters"):
        base_hyperparameters, base_label = live["hyperparameters"], "the live model"
    if result["status"] == "Completed" and "artifact_sha256" in result:
        version = register(clients, spec, result, files, image_digest, say)
        result.update(
            model_package_group=version.group,
            model_package_arn=version.arn,
            model_package_version=version.number,
            model_package_status=version.status,
        )
    training_report = files.get("report.md", b"").decode("utf-8", "replace") or None
    report_path.parent.mkdir(parents=True, exist_ok=True)
    for image in IMAGE_FILES:
        if image in files:
            (report_path.parent / image).write_bytes(files[image])
    result["report_images"] = [i for i in IMAGE_FILES if i in files]
    artifact_metrics = json.loads(files["metrics.json"]) if "metrics.json" in files else None
    report_path.write_text(
        render_report(
            result, live, base_hyperparameters, base_label, training_report, spec.region, artifact_metrics
        ),
        encoding="utf-8",
    )
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    if result["status"] != "Completed":
        say(
            f"training job {job_name} {result['status']}: "
            f"{result.get('failure_reason') or 'no FailureReason'}"
        )
        return 1
    if "model_package_arn" not in result:
        say(
            f"training job {job_name} Completed but its artifact could not be read: "
            f"{result.get('artifact_error')}"
        )
        return 1
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
    try:
        names.parse_s3_uri(spec.output_s3, "--output-s3")
    except InputError as e:
        problems.append(str(e))
    pairs = [(spec.model_package_group, "--model-package-group"), (spec.endpoint_name, "--endpoint-name")]
    problems += names.name_problems(pairs + ([(spec.job_name, "--job-name")] if spec.job_name else []))
    for uri, what in ((spec.data, "--data"), (spec.validation_data, "--validation-data")):
        if uri and not uri.startswith("s3://") and not Path(uri).is_file():
            problems.append(f"{what} {uri!r} is neither an s3:// URI nor an existing file")
        elif uri and uri.startswith("s3://"):
            try:
                names.parse_s3_uri(uri, what)
            except InputError as e:
                problems.append(str(e))
    role_problem = names.check_role_arn(spec.role_arn, "--training-role-arn")
    if role_problem:
        problems.append(role_problem)
    if spec.instance_count != 1:
        problems.append(
            f"--instance-count {spec.instance_count}: the container trains on one host (XGBoost here is not "
            f"distributed), so more instances would only bill idle hosts"
        )
    if spec.volume_gb < 1 or spec.max_runtime_s < 1:
        problems.append("--volume-gb and --max-runtime-minutes must be positive")
    if spec.max_wait_s is not None and (not spec.spot or spec.max_wait_s < spec.max_runtime_s):
        problems.append("--max-wait-minutes needs --spot and must be at least --max-runtime-minutes")
    if problems:
        raise InputError("; ".join(problems))


__all__ = [
    "TrainingJobFailedError",
    "TrainingJobSpec",
    "check_spec",
    "collect",
    "register",
    "resolve_image",
    "create_request",
    "launch",
    "run",
    "wait",
]
