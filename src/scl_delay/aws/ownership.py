"""What deploy.py owns: the tags it puts on everything it creates, and the AWS errors that mean "absent".

Shared by deploy.py and gateway.py so both recognise the same resources as theirs.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError

from . import names

MANAGER = "deploy.py"
NOT_FOUND_CODES = (
    "NotFoundException",
    "ResourceNotFoundException",
    "ResourceNotFound",
    "ObjectNotFoundException",
    "NoSuchKey",
    "NotFound",
    "404",
    "ImageNotFoundException",
    "RepositoryNotFoundException",
)
# SageMaker answers most missing resources with ValidationException and one of these messages:
# DescribeEndpoint "Could not find endpoint ...", DescribeTrainingJob "Requested resource not found"
# (aws/aws-sdk#165), DescribeModelPackageGroup "... does not exist".
NOT_FOUND_MESSAGES = ("Could not find", "Requested resource not found", "does not exist", "not found")


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def is_not_found(e: ClientError) -> bool:
    message = e.response.get("Error", {}).get("Message", "")
    return error_code(e) in NOT_FOUND_CODES or (
        error_code(e) == "ValidationException" and any(m in message for m in NOT_FOUND_MESSAGES)
    )


def describe_or_none(call, **kwargs) -> dict | None:
    """``call(**kwargs)``, or None when the resource does not exist; any other error propagates."""
    try:
        return call(**kwargs)
    except ClientError as e:
        if is_not_found(e):
            return None
        raise


def paged(call, key: str, **kwargs) -> list[dict]:
    """Every item of a NextToken-paged SageMaker/CloudWatch list call."""
    items, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return items


def sagemaker_tags(sm, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn).get("Tags", [])}


def tags_for(endpoint: str, **extra: str | None) -> dict[str, str]:
    return names.tag_map({names.TAG_MANAGED_BY: MANAGER, names.TAG_DEPLOYMENT: endpoint, **extra})


def is_ours(tags: Mapping[str, str], endpoint: str) -> bool:
    return tags.get(names.TAG_MANAGED_BY) == MANAGER and tags.get(names.TAG_DEPLOYMENT) == endpoint
