"""Resource names, tags and S3 URIs. Pure: no boto3, no network.

SageMaker names must match ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``. Every name we build carries the short
commit so that a job, model or endpoint config in the console leads back to the code that made it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from ..errors import InputError

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MAX_NAME_CHARS = 63
PROJECT = "scl-delay"
TAG_PREFIX = "scl-delay:"
TAG_MANAGED_BY = f"{TAG_PREFIX}managed-by"
TAG_COMMIT = f"{TAG_PREFIX}commit"
TAG_PR = f"{TAG_PREFIX}pr"
TAG_REPO = f"{TAG_PREFIX}repo"
TAG_DEPLOYMENT = f"{TAG_PREFIX}deployment"
TAG_TRAINING_JOB = f"{TAG_PREFIX}training-job"
TAG_MODEL_PACKAGE = f"{TAG_PREFIX}model-package"
ROLE_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# A CloudWatch Logs log group (its name as botocore's LogGroupName shape allows), with or without the ":*"
# that DescribeLogGroups' `arn` field carries (docs/verified-aws.md).
LOG_GROUP_ARN_RE = re.compile(
    r"^arn:aws(-cn|-us-gov)?:logs:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:log-group:[.\-_/#A-Za-z0-9]{1,512}(:\*)?$"
)
S3_RE = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")


class NameError_(InputError):
    code = "invalid_name"


def slug(text: str) -> str:
    """Lower-case alphanumerics and single hyphens; what SageMaker and API Gateway both accept."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def check_name(name: str, what: str = "name") -> str:
    """A valid SageMaker name, lower-case: SageMaker lower-cases the names inside ARNs, and IAM matches
    resource ARNs case-sensitively, so a policy written for ``scl-delay-*`` must see the name as typed."""
    if not NAME_RE.match(name):
        raise NameError_(
            f"{what} {name!r} is not a valid SageMaker name: 1-63 letters, digits and single "
            f"hyphens, starting and ending with a letter or digit"
        )
    if name != name.lower():
        raise NameError_(
            f"{what} {name!r} must be lower-case "
            "(SageMaker lower-cases ARNs; IAM policies match them as written)"
        )
    return name


def name_problems(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """``check_name``'s message for each (name, what) pair that is not a valid name; [] when all are."""
    problems = []
    for name, what in pairs:
        try:
            check_name(name, what)
        except NameError_ as e:
            problems.append(str(e))
    return problems


def partition(region: str) -> str:
    """The ARN partition of a region: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def dns_suffix(region: str) -> str:
    """Service host suffix: ``amazonaws.com``, or ``amazonaws.com.cn`` in the China regions."""
    return "amazonaws.com.cn" if partition(region) == "aws-cn" else "amazonaws.com"


def console_host(region: str) -> str:
    return {
        "aws-cn": "console.amazonaws.cn",
        "aws-us-gov": "console.amazonaws-us-gov.com",
    }.get(partition(region), f"{region}.console.aws.amazon.com")


def endpoint_log_group(endpoint: str) -> str:
    """Where SageMaker writes an endpoint's container logs (named from the endpoint, not the model)."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def job_prefix(output_s3: str, commit: str, pr_number: str | None) -> str:
    """The one S3 prefix a PR's training writes under: ``<output>/pr-<N>`` (``commit-<sha8>`` without a PR).
    A slash ends every prefix an IAM policy grants, so ``pr-1`` never matches ``pr-12``."""
    leaf = f"pr-{slug(pr_number)}" if pr_number else f"commit-{short_commit(commit)}"
    return join_s3(output_s3, leaf)


def _fit(prefix: str, suffix: str) -> str:
    """``prefix-suffix`` within 63 characters, shortening the prefix (the suffix carries the identity)."""
    room = MAX_NAME_CHARS - len(suffix) - 1
    head = slug(prefix)[: max(room, 1)].rstrip("-") or "x"
    return f"{head}-{suffix}"


def short_commit(commit: str) -> str:
    c = slug(commit)[:8]
    return c or "nocommit"


def stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def training_job_name(
    commit: str, pr_number: str | None = None, *, prefix: str = PROJECT, now: datetime | None = None
) -> str:
    """e.g. ``scl-delay-pr42-1a2b3c4d-20261123-021500``: unique per launch, traceable to PR and commit."""
    suffix = "-".join(
        p for p in (f"pr{slug(pr_number)}" if pr_number else "", short_commit(commit), stamp(now)) if p
    )
    return check_name(_fit(prefix, suffix), "training job name")


def version_suffix(commit: str, *identity: str) -> str:
    """Deterministic version: same commit and inputs give the same name, so a re-run finds what exists."""
    digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:6]
    return f"{short_commit(commit)}-{digest}"


def versioned_name(base: str, commit: str, *identity: str) -> str:
    """Model / endpoint-config name ``<endpoint>-<commit8>-<hash6>``."""
    return check_name(_fit(base, version_suffix(commit, *identity)), "resource name")


def tags(values: Mapping[str, str | None]) -> list[dict[str, str]]:
    """SageMaker-style tag list; empty values dropped (tag values may be empty, but they say nothing)."""
    return [{"Key": k, "Value": str(v)[:256]} for k, v in values.items() if v not in (None, "")]


def tag_map(values: Mapping[str, str | None]) -> dict[str, str]:
    """API Gateway / Application Auto Scaling style tags."""
    return {k: str(v)[:256] for k, v in values.items() if v not in (None, "")}


def parse_s3_uri(uri: str, what: str = "S3 URI") -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); InputError naming ``what`` otherwise."""
    m = S3_RE.fullmatch(uri or "")
    if not m:
        raise InputError(f"{what} must look like s3://bucket/prefix, got {uri!r}")
    return m.group(1), (m.group(2) or "")


def join_s3(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts if p)])


def check_role_arn(value: str, what: str) -> str | None:
    """None if ``value`` is an IAM role ARN (any partition), else the problem, naming the flag."""
    if ROLE_ARN_RE.fullmatch(value or ""):
        return None
    return f"{what} must be an IAM role ARN (arn:<partition>:iam::<account>:role/<name>), got {value!r}"


def check_log_group_arn(value: str, what: str) -> str | None:
    """None if ``value`` is a CloudWatch Logs log group ARN (any partition, ``:*`` or not), else the problem,
    naming the flag."""
    if LOG_GROUP_ARN_RE.fullmatch(value or ""):
        return None
    return (
        f"{what} must be a CloudWatch Logs log group ARN "
        f"(arn:<partition>:logs:<region>:<account>:log-group:<name>), got {value!r}"
    )
