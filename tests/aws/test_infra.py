"""infra/: every policy document is JSON, holds no account id, and grants no wildcard action."""

from __future__ import annotations

import json
import re

import pytest

from .aws_helpers import ROOT

DOCS = sorted((ROOT / "infra").glob("*.json"))


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_policy_document_is_valid_and_least_privilege(path):
    text = path.read_text()
    doc = json.loads(text)
    assert doc["Version"] == "2012-10-17"
    assert not re.search(r"(?<![\w$])\d{12}(?!\w)", text), "account ids must be ${AWS_ACCOUNT_ID}"
    for statement in doc["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(not a.endswith(":*") and a != "*" for a in actions), statement


def test_every_role_has_a_trust_and_a_permissions_document():
    roles = {p.name.split(".")[0] for p in DOCS}
    for role in roles:
        assert (ROOT / "infra" / f"{role}.trust.json").is_file() and (
            ROOT / "infra" / f"{role}.policy.json"
        ).is_file()
    assert len(roles) == 4
