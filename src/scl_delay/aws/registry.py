"""The SageMaker Model Registry: one model package group per endpoint, one versioned package per trained
model.

    training_job.py   registers each completed PR training job: PendingManualApproval
    deploy.py         finds the package of the merged commit, gates it, marks it Approved (or Rejected with
                      the reason) and deploys it; a rollback rejects the failed version and redeploys the
                      newest version still Approved

The package holds the image by digest, the artifact, the content and instance types the container supports,
the model-quality statistics document (the artifact's metrics.json in SageMaker's model-quality layout) and
metadata naming the commit, PR, repository, training job, dataset and artifact sha256 and hyperparameters.
Which version is live is read from the endpoint (its config carries the tag ``scl-delay:model-package``),
never from a file a pull request could write.

moto (5.2) differs from AWS in two ways this module works around: UpdateModelPackage replaces
CustomerMetadataProperties instead of merging them and clears ApprovalDescription when it is not sent, so
``set_status`` always sends the full metadata and the description.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import ClientError

from . import names, ownership

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
CONTENT_TYPES = ("application/json", "text/csv", "application/jsonlines")
REALTIME_INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.c5.large", "ml.c5.xlarge")
TRANSFORM_INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge")
STATISTICS_CONTENT_TYPE = "application/json"

KEY_COMMIT = "commit"
KEY_PR = "pr"
KEY_REPO = "repository"
KEY_JOB = "training-job"
KEY_ARTIFACT_SHA = "artifact-sha256"
KEY_DATASET_SHA = "dataset-sha256"
KEY_MERGE_COMMIT = "merge-commit"
KEY_MERGED_BY = "merged-by"
HP_PREFIX = "hp:"
METRIC_PREFIX = "metric:"
# shown in --list and in the metadata; the gate reads metrics from the training job, not from here
SHOWN_METRICS = ("test:recall", "test:precision", "test:f1", "test:roc_auc", "test:pr_auc", "test:threshold")
MAX_METADATA_ENTRIES = 50
MAX_METADATA_VALUE = 256


@dataclass(frozen=True)
class Version:
    """One model package, as DescribeModelPackage returns it, with the fields we read by name."""

    arn: str
    group: str
    number: int
    status: str
    image: str
    image_digest: str | None
    artifact: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    description: str = ""
    approval_description: str = ""

    @classmethod
    def from_description(cls, desc: Mapping) -> Version:
        container = (desc.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
        return cls(
            arn=desc["ModelPackageArn"],
            group=desc.get("ModelPackageGroupName", ""),
            number=int(desc.get("ModelPackageVersion") or 0),
            status=desc.get("ModelApprovalStatus", ""),
            image=container.get("Image", ""),
            image_digest=container.get("ImageDigest"),
            artifact=container.get("ModelDataUrl", ""),
            metadata=dict(desc.get("CustomerMetadataProperties") or {}),
            created=desc.get("CreationTime"),
            description=desc.get("ModelPackageDescription", ""),
            approval_description=desc.get("ApprovalDescription", ""),
        )

    @property
    def commit(self) -> str | None:
        return self.metadata.get(KEY_COMMIT)

    @property
    def pr(self) -> str | None:
        return self.metadata.get(KEY_PR)

    @property
    def training_job(self) -> str | None:
        return self.metadata.get(KEY_JOB)

    @property
    def artifact_sha256(self) -> str | None:
        return self.metadata.get(KEY_ARTIFACT_SHA)

    @property
    def metrics(self) -> dict[str, float]:
        out = {}
        for key, value in self.metadata.items():
            if key.startswith(METRIC_PREFIX):
                try:
                    out[key.removeprefix(METRIC_PREFIX)] = float(value)
                except ValueError:
                    pass
        return out

    @property
    def hyperparameters(self) -> dict[str, str]:
        return {k.removeprefix(HP_PREFIX): v for k, v in self.metadata.items() if k.startswith(HP_PREFIX)}

    def label(self) -> str:
        return f"{self.group} v{self.number}"


# ----------------------------------------------------------------------------------------- pure request parts


def model_quality_statistics(metrics: Mapping) -> dict:
    """The artifact's metrics.json in the layout SageMaker Model Monitor uses for model-quality statistics
    (``binary_classification_metrics``: ``{"recall": {"value": ..., "standard_deviation": "NaN"}}``), the
    test split; the whole metrics.json (validation, test, baselines) rides along under ``scl_delay``."""
    test = metrics.get("test", {}) if isinstance(metrics, Mapping) else {}
    block: dict = {}
    for name in ("recall", "precision", "f1", "roc_auc", "pr_auc"):
        value = test.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            key = {"roc_auc": "auc", "pr_auc": "pr_auc"}.get(name, name)
            block[key] = {"value": float(value), "standard_deviation": "NaN"}
    confusion = test.get("confusion_matrix")
    if confusion:
        (tn, fp), (fn, tp) = confusion
        block["confusion_matrix"] = {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    return {"version": 0.0, "binary_classification_metrics": block, "scl_delay": metrics}


def customer_metadata(
    *,
    commit: str,
    training_job: str,
    artifact_sha256: str,
    dataset_sha256: str | None,
    pr: str | None,
    repo: str | None,
    metrics: Mapping[str, float],
    hyperparameters: Mapping[str, str],
) -> dict[str, str]:
    """CustomerMetadataProperties: at most 50 entries of at most 256 characters; identity first, then the
    shown metrics, then hyperparameters (one key each, so no value outgrows 256)."""
    out = {
        KEY_COMMIT: commit,
        KEY_JOB: training_job,
        KEY_ARTIFACT_SHA: artifact_sha256,
        KEY_DATASET_SHA: dataset_sha256,
        KEY_PR: pr,
        KEY_REPO: repo,
    }
    out.update({f"{METRIC_PREFIX}{m}": f"{metrics[m]:.6f}" for m in SHOWN_METRICS if m in metrics})
    out.update({f"{HP_PREFIX}{k}": v for k, v in sorted(hyperparameters.items())})
    clean = {k: str(v)[:MAX_METADATA_VALUE] for k, v in out.items() if v not in (None, "")}
    return dict(list(clean.items())[: MAX_METADATA_ENTRIES - 2])  # room for merge-commit and merged-by


def registration_request(
    group: str,
    *,
    image: str,
    image_digest: str,
    artifact: str,
    metadata: Mapping[str, str],
    job_arn: str,
    statistics_uri: str,
    statistics_sha256: str,
    description: str,
) -> dict:
    """The CreateModelPackage parameters (pure, so the exact request is testable where moto drops fields)."""
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description[:1000],
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ImageDigest": image_digest, "ModelDataUrl": artifact}],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(CONTENT_TYPES),
            "SupportedRealtimeInferenceInstanceTypes": list(REALTIME_INSTANCE_TYPES),
            "SupportedTransformInstanceTypes": list(TRANSFORM_INSTANCE_TYPES),
        },
        "ModelApprovalStatus": PENDING,
        "MetadataProperties": {
            "CommitId": metadata[KEY_COMMIT],
            "Repository": metadata.get(KEY_REPO, ""),
            "GeneratedBy": job_arn,
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": STATISTICS_CONTENT_TYPE,
                    "S3Uri": statistics_uri,
                    "ContentDigest": f"sha256:{statistics_sha256}",
                }
            }
        },
        "CustomerMetadataProperties": dict(metadata),
        "Tags": names.tags(
            {
                names.TAG_COMMIT: metadata[KEY_COMMIT],
                names.TAG_PR: metadata.get(KEY_PR),
                names.TAG_REPO: metadata.get(KEY_REPO),
                names.TAG_TRAINING_JOB: metadata[KEY_JOB],
            }
        ),
    }


# ------------------------------------------------------------------------------------------------ calls


def ensure_group(sm, group: str, say: Callable[[str], None] = print) -> bool:
    """Create the group when it is missing (the account template normally has); True if created."""
    if ownership.describe_or_none(sm.describe_model_package_group, ModelPackageGroupName=group):
        return False
    try:
        sm.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"scl-delay models for endpoint {group}",
            Tags=names.tags({names.TAG_MANAGED_BY: ownership.MANAGER}),
        )
    except ClientError:  # two PRs registering at once: the other created it
        if ownership.describe_or_none(sm.describe_model_package_group, ModelPackageGroupName=group):
            return False
        raise
    say(f"created model package group {group}")
    return True


def register(sm, request: Mapping) -> Version:
    arn = sm.create_model_package(**request)["ModelPackageArn"]
    return describe(sm, arn)


def describe(sm, arn: str) -> Version:
    return Version.from_description(sm.describe_model_package(ModelPackageName=arn))


def _summaries(sm, group: str, status: str | None = None) -> list[dict]:
    if ownership.describe_or_none(sm.describe_model_package_group, ModelPackageGroupName=group) is None:
        return []
    kwargs = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        kwargs["ModelApprovalStatus"] = status
    return ownership.paged(sm.list_model_packages, "ModelPackageSummaryList", **kwargs)


def versions(sm, group: str, status: str | None = None) -> list[Version]:
    """Every version in the group (optionally of one approval status), newest first."""
    found = [describe(sm, s["ModelPackageArn"]) for s in _summaries(sm, group, status)]
    return sorted(found, key=lambda v: v.number, reverse=True)


def for_commit(sm, group: str, commit: str) -> Version | None:
    """The newest version registered for ``commit`` (a full SHA, or a prefix of at least 7 characters);
    described newest first, so a long history costs one call per version newer than the match."""
    if len(commit) < 7:
        return None
    summaries = sorted(
        _summaries(sm, group), key=lambda s: int(s.get("ModelPackageVersion") or 0), reverse=True
    )
    for summary in summaries:
        version = describe(sm, summary["ModelPackageArn"])
        if (version.commit or "").startswith(commit.lower()):
            return version
    return None


def set_status(sm, version: Version, status: str, description: str, **metadata: str | None) -> Version:
    """Approve or reject, with the reason; ``metadata`` (e.g. merge commit, merged by) is added."""
    merged = {**version.metadata, **{k: str(v)[:MAX_METADATA_VALUE] for k, v in metadata.items() if v}}
    sm.update_model_package(
        ModelPackageArn=version.arn,
        ModelApprovalStatus=status,
        ApprovalDescription=description[:1000],
        CustomerMetadataProperties=merged,
    )
    return describe(sm, version.arn)


def live_version(sm, endpoint: str) -> tuple[Version | None, dict | None]:
    """(the version the endpoint serves, DescribeEndpoint) from the endpoint config's package tag."""
    desc = ownership.describe_or_none(sm.describe_endpoint, EndpointName=endpoint)
    if desc is None:
        return None, None
    config = ownership.describe_or_none(
        sm.describe_endpoint_config, EndpointConfigName=desc["EndpointConfigName"]
    )
    if config is None:
        return None, desc
    arn = ownership.sagemaker_tags(sm, config["EndpointConfigArn"]).get(names.TAG_MODEL_PACKAGE)
    if not arn:
        return None, desc
    try:
        return describe(sm, arn), desc
    except ClientError as e:
        if ownership.is_not_found(e):
            return None, desc
        raise


def delete_group(sm, group: str) -> list[str]:
    """Every version, then the group: the registry's history is gone (teardown --purge-registry only)."""
    done = []
    for version in versions(sm, group):
        sm.delete_model_package(ModelPackageName=version.arn)
        done.append(f"deleted model package {version.label()}")
    if ownership.describe_or_none(sm.describe_model_package_group, ModelPackageGroupName=group):
        sm.delete_model_package_group(ModelPackageGroupName=group)
        done.append(f"deleted model package group {group}")
    return done


def statistics_document(metrics: Mapping) -> bytes:
    return json.dumps(model_quality_statistics(metrics), indent=2, sort_keys=True).encode()
