"""What deploy.py checks before a registered version may serve, so that pull-request code reaches production
only as the merged commit trained it (issue 11, defect 6):

- the version's training job exists, Completed, ran the merged commit, with no network, the very image
  (by digest) and artifact the version names (DescribeTrainingJob is written by SageMaker, not by the PR);
- the image the merged commit's tag points at in ECR is that digest;
- the artifact, copied to the deploy-only prefix (which the PR and training roles cannot write), has the
  sha256 registered; the serving role reads only that copy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from . import names, ownership, registry
from .training_job import ECR_IMAGE_RE, artifact_files, scraped_metrics

COMMIT_ENV = "SCL_DELAY_GIT_COMMIT"
SHA256_METADATA = "sha256"  # S3 user metadata on the deployed copy
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")


class ProvenanceError(Exception):
    """The version is not what the merged commit trained (or its artifact changed): refused, nothing
    changed."""


def check_job(sm, version: registry.Version, commit: str | None) -> dict:
    """DescribeTrainingJob of the version's job, after checking it against the version and ``commit``."""
    name = version.training_job
    if not name:
        raise ProvenanceError(f"{version.label()} names no training job")
    desc = ownership.describe_or_none(sm.describe_training_job, TrainingJobName=name)
    if desc is None:
        raise ProvenanceError(f"training job {name} of {version.label()} does not exist")
    problems = []
    if desc["TrainingJobStatus"] != "Completed":
        problems.append(f"the job is {desc['TrainingJobStatus']}, not Completed")
    job_commit = job_commit_of(sm, desc)
    expected = commit or version.commit
    if not job_commit or not expected or not job_commit.startswith(expected.lower()):
        problems.append(f"the job trained commit {job_commit or 'unknown'}, not {expected}")
    if version.commit and job_commit and job_commit != version.commit:
        problems.append(f"the version claims commit {version.commit}, its job trained {job_commit}")
    image = desc["AlgorithmSpecification"]["TrainingImage"]
    if image != version.image:
        problems.append(f"the job ran image {image}, the version names {version.image}")
    digest = DIGEST_RE.search(image)
    if not digest or digest.group(1) != version.image_digest:
        problems.append(
            f"the job's image {image} is not pinned to the version's digest {version.image_digest}"
        )
    artifact = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if artifact != version.artifact:
        problems.append(f"the job wrote {artifact}, the version names {version.artifact}")
    if desc.get("EnableNetworkIsolation") is not True:
        problems.append("the job ran without network isolation")
    if problems:
        raise ProvenanceError(f"{version.label()} ({name}): " + "; ".join(problems))
    return desc


def job_commit_of(sm, desc: Mapping) -> str | None:
    """The commit the job was launched for: its Environment (immutable after CreateTrainingJob). moto does not
    return Environment unless the local training backend kept it; the creation-time tag is the fallback."""
    commit = (desc.get("Environment") or {}).get(COMMIT_ENV)
    if commit:
        return commit.lower()
    tag = ownership.sagemaker_tags(sm, desc["TrainingJobArn"]).get(names.TAG_COMMIT)
    return tag.lower() if tag else None


def check_image_for_commit(ecr, version: registry.Version, commit: str) -> None:
    """The merged commit's image tag must point at the digest the version was trained and registered with."""
    base = version.image.split("@", 1)[0]
    parsed = ECR_IMAGE_RE.match(f"{base}:{commit}")
    if not parsed:
        raise ProvenanceError(
            f"{version.label()}: image {version.image} is not in ECR; cannot check its digest"
        )
    images = ownership.describe_or_none(
        ecr.describe_images,
        registryId=parsed.group("account"),
        repositoryName=parsed.group("repo"),
        imageIds=[{"imageTag": commit}],
    )
    details = (images or {}).get("imageDetails") or []
    if not details:
        raise ProvenanceError(f"no image tagged {commit} in ECR repository {parsed.group('repo')}")
    if details[0]["imageDigest"] != version.image_digest:
        raise ProvenanceError(
            f"the image tagged {commit} is {details[0]['imageDigest']}, but {version.label()} was trained "
            f"with {version.image_digest}"
        )


def deployed_artifact_uri(deploy_s3: str, endpoint: str, version: registry.Version) -> str:
    return names.join_s3(deploy_s3, endpoint, f"v{version.number}", "model.tar.gz")


def copy_artifact(s3, version: registry.Version, deploy_s3: str, endpoint: str) -> tuple[str, dict, bool]:
    """(deployed copy's URI, the artifact's small files, whether a copy was written). The bytes read are the
    bytes hashed and the bytes written: no gap between the check and the copy."""
    target = deployed_artifact_uri(deploy_s3, endpoint, version)
    bucket, key = names.parse_s3_uri(target)
    head = ownership.describe_or_none(s3.head_object, Bucket=bucket, Key=key)
    if head and head.get("Metadata", {}).get(SHA256_METADATA) == version.artifact_sha256:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(data).hexdigest() == version.artifact_sha256:
            return target, artifact_files(data), False
    src_bucket, src_key = names.parse_s3_uri(version.artifact)
    data = s3.get_object(Bucket=src_bucket, Key=src_key)["Body"].read()
    found = hashlib.sha256(data).hexdigest()
    if found != version.artifact_sha256:
        raise ProvenanceError(
            f"{version.artifact} has sha256 {found[:16]}…, but {version.label()} registered "
            f"{str(version.artifact_sha256)[:16]}…: the artifact changed after training"
        )
    s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA256_METADATA: found})
    return target, artifact_files(data), True


def gate_metrics(desc: Mapping, files: Mapping[str, bytes]) -> dict[str, float]:
    """What SageMaker scraped from the job's log, completed by metrics.json of the verified artifact."""
    from ..metric_lines import metric_values

    from_artifact = metric_values(json.loads(files["metrics.json"])) if "metrics.json" in files else {}
    return {**from_artifact, **scraped_metrics(desc)}
