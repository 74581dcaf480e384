"""What deploy.py owns: the tags it puts on everything it creates, and the AWS errors that mean "absent".

Shared by deploy.py and gateway.py so both recognise the same resources as theirs.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError

from . import names

MANAGER = "deploy.py"
NOT_FOUND_CODES = ("NotFoundException", "ResourceNotFoundException", "ObjectNotFoundException")


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def is_not_found(e: ClientError) -> bool:
    message = e.response.get("Error", {}).get("Message", "")
    return error_code(e) in NOT_FOUND_CODES or (
        error_code(e) == "ValidationException" and "Could not find" in message
    )


def tags_for(endpoint: str, **extra: str | None) -> dict[str, str]:
    return names.tag_map({names.TAG_MANAGED_BY: MANAGER, names.TAG_DEPLOYMENT: endpoint, **extra})


def is_ours(tags: Mapping[str, str], endpoint: str) -> bool:
    return tags.get(names.TAG_MANAGED_BY) == MANAGER and tags.get(names.TAG_DEPLOYMENT) == endpoint
