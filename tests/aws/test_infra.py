"""infra/scl-delay.yaml: cfn-lint clean, every policy parliament-clean (each ignore justified in the
template's Metadata and still needed), no account id, and trust policies that admit exactly this
repository's OIDC subjects in the form it uses (names, immutable ids, or both while migrating).

The OIDC trust conditions are evaluated here by ``trust_admits`` (StringEquals/StringLike over the token's
claims), because moto does not evaluate trust policies (local_aws.iam_enforcement)."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from local_aws import stack

from .aws_helpers import ACCOUNT, REGION, ROOT

TEMPLATE = ROOT / "infra" / "scl-delay.yaml"
OWNER, REPO, OWNER_ID, REPO_ID = "acme", "scl-delay", "1234567", "890123456"
IDS = {"GitHubOwnerId": OWNER_ID, "GitHubRepoId": REPO_ID}
ROLES = (
    "github-pr-training",
    "sagemaker-training",
    "sagemaker-serving",
    "github-deploy",
    "apigateway-invoke",
)


def rendered(form: str = "name", **extra: str) -> stack.Rendered:
    params = {"GitHubOwner": OWNER, "GitHubRepo": REPO, "SubjectClaimForm": form, **extra}
    if form != "name":
        params.update(IDS)
    return stack.render(TEMPLATE, params, ACCOUNT, REGION)


def test_template_passes_cfn_lint():
    """Errors, warnings and the informational checks (e.g. explicit deletion policies on stateful
    resources)."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--include-checks", "I", "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_template_holds_no_account_id_and_no_wildcard_action():
    text = TEMPLATE.read_text()
    assert not re.search(r"(?<![\w$])\d{12}(?!\w)", text), "account ids come from ${AWS::AccountId}"
    for name, role in rendered().roles().items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert all(a != "*" and not a.endswith(":*") for a in actions), (name, statement)


def test_the_five_roles_and_their_outputs():
    out = rendered()
    names = sorted(r["Properties"]["RoleName"] for r in out.roles().values())
    assert names == sorted([f"scl-delay-{r}" for r in ROLES] + ["scl-delay-apigateway-cloudwatch"])
    for key, role in (
        ("PrTrainingRoleArn", "github-pr-training"),
        ("TrainingExecutionRoleArn", "sagemaker-training"),
        ("ServingExecutionRoleArn", "sagemaker-serving"),
        ("DeployRoleArn", "github-deploy"),
        ("ApiGatewayInvokeRoleArn", "apigateway-invoke"),
    ):
        assert out.outputs[key] == f"arn:aws:iam::{ACCOUNT}:role/scl-delay-{role}"


def test_arns_follow_the_partition():
    """ARNs are built from ${AWS::Partition}: the same template works in aws-cn and aws-us-gov."""
    china = stack.render(TEMPLATE, {"GitHubOwner": OWNER, "GitHubRepo": REPO}, ACCOUNT, "cn-north-1")
    text = json.dumps(china.resources)
    assert "arn:aws:" not in text.replace("arn:aws-cn:", "")
    assert "arn:aws-cn:sagemaker:cn-north-1" in text


def _parliament_findings(document: dict) -> list[tuple[str, str]]:
    """(Sid, issue) of each finding, one statement at a time so each finding names its statement."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        from parliament import analyze_policy_string
    found = []
    for statement in document["Statement"]:
        single = json.dumps({"Version": document["Version"], "Statement": [statement]})
        policy = analyze_policy_string(single, include_community_auditors=False)
        found += [(statement.get("Sid", ""), f.issue) for f in policy.findings]
    return found


def _documents(resource: dict) -> list[dict]:
    props = resource["Properties"]
    if resource["Type"] == "AWS::IAM::Role":
        # trust policies have no Resource, which parliament (an identity-policy linter) calls MALFORMED;
        # they are checked by trust_admits below instead
        return [p["PolicyDocument"] for p in props.get("Policies", [])]
    if resource["Type"] in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"):
        return [props["PolicyDocument"]]
    return []


@pytest.mark.parametrize("logical_id", sorted(rendered("both").resources))
def test_every_policy_passes_parliament_with_each_ignore_justified(logical_id):
    resource = rendered("both").resources[logical_id]
    findings = {f for doc in _documents(resource) for f in _parliament_findings(doc)}
    ignores = resource["Metadata"].get("parliament-ignore", [])
    ignored = {(i["sid"], i["issue"]) for i in ignores}
    assert all(len(i.get("why", "").split()) >= 5 for i in ignores), "each ignore says why"
    assert findings <= ignored, f"unjustified parliament findings: {sorted(findings - ignored)}"
    assert ignored <= findings, (
        f"stale ignores (parliament no longer flags them): {sorted(ignored - findings)}"
    )


# ------------------------------------------------------------------------------------ OIDC trust (issue 12)


def trust_admits(trust: dict, claims: dict[str, str], action: str = "sts:AssumeRoleWithWebIdentity") -> bool:
    """IAM's verdict on a web-identity AssumeRole for a token with these claims (String* operators)."""
    allowed = False
    for statement in trust["Statement"]:
        if statement.get("Action") != action or "Federated" not in statement.get("Principal", {}):
            continue
        holds = True
        for operator, pairs in statement.get("Condition", {}).items():
            for key, expected in pairs.items():
                wanted = expected if isinstance(expected, list) else [expected]
                actual = claims.get(key.removeprefix("token.actions.githubusercontent.com:"))
                if actual is None:
                    holds = False
                elif operator == "StringEquals":
                    holds &= actual in wanted
                elif operator == "StringLike":
                    holds &= any(fnmatch.fnmatchcase(actual, w) for w in wanted)
                else:
                    pytest.fail(f"trust_admits does not know {operator}")
        if holds and statement["Effect"] == "Deny":
            return False
        allowed |= holds and statement["Effect"] == "Allow"
    return allowed


def _trust(out: stack.Rendered, role: str) -> dict:
    return out.role_named(role)["Properties"]["AssumeRolePolicyDocument"]


NAME_PR = f"repo:{OWNER}/{REPO}:pull_request"
IMMUTABLE_PR = f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:pull_request"
NAME_PROD = f"repo:{OWNER}/{REPO}:environment:production"
IMMUTABLE_PROD = f"repo:{OWNER}@{OWNER_ID}/{REPO}@{REPO_ID}:environment:production"


@pytest.mark.parametrize(
    ("form", "admitted", "refused"),
    [
        ("name", {NAME_PR, NAME_PROD}, {IMMUTABLE_PR, IMMUTABLE_PROD}),
        ("immutable", {IMMUTABLE_PR, IMMUTABLE_PROD}, {NAME_PR, NAME_PROD}),
        ("both", {NAME_PR, NAME_PROD, IMMUTABLE_PR, IMMUTABLE_PROD}, set()),
    ],
)
def test_oidc_trust_takes_the_claim_form_the_repository_uses(form, admitted, refused):
    out = rendered(form)
    pr, deploy = _trust(out, "github-pr-training"), _trust(out, "github-deploy")
    for sub in (NAME_PR, IMMUTABLE_PR):
        assert trust_admits(pr, {"aud": "sts.amazonaws.com", "sub": sub}) == (sub in admitted), sub
        assert not trust_admits(deploy, {"aud": "sts.amazonaws.com", "sub": sub}), "a PR never deploys"
    for sub in (NAME_PROD, IMMUTABLE_PROD):
        assert trust_admits(deploy, {"aud": "sts.amazonaws.com", "sub": sub}) == (sub in admitted), sub
        assert not trust_admits(pr, {"aud": "sts.amazonaws.com", "sub": sub})
    assert not refused & admitted


@pytest.mark.parametrize(
    "sub",
    [
        f"repo:{OWNER}/other-repo:pull_request",
        f"repo:someone-else/{REPO}:pull_request",
        f"repo:{OWNER}@999/{REPO}@{REPO_ID}:pull_request",  # same names, another owner id: a recycled name
        f"repo:{OWNER}@{OWNER_ID}/{REPO}@1:pull_request",
        f"repo:{OWNER}-{OWNER_ID}/{REPO}-{REPO_ID}:pull_request",  # a repository literally named so
        f"repo:{OWNER}/{REPO}:ref:refs/heads/main",
        f"repo:{OWNER}/{REPO}:environment:staging",
    ],
)
def test_oidc_trust_rejects_other_repositories_and_other_subjects(sub):
    out = rendered("both")
    for role in ("github-pr-training", "github-deploy"):
        assert not trust_admits(_trust(out, role), {"aud": "sts.amazonaws.com", "sub": sub}), (role, sub)


def test_oidc_trust_requires_the_sts_audience():
    out = rendered("both")
    assert not trust_admits(
        _trust(out, "github-pr-training"), {"aud": "https://github.com/acme", "sub": NAME_PR}
    )


def test_immutable_claims_need_the_ids():
    """The template's Rules refuse immutable claims without the ids (render applies Rules as
    CloudFormation)."""
    with pytest.raises(ValueError, match="GitHubOwnerId is required"):
        stack.render(
            TEMPLATE, {"GitHubOwner": OWNER, "GitHubRepo": REPO, "SubjectClaimForm": "both"}, ACCOUNT, REGION
        )


def test_api_gateway_invoke_trust_has_no_source_condition():
    """Issue 11 defect 1: API Gateway sends no aws:SourceAccount/SourceArn when it assumes an integration
    credentials role; a condition on them makes every POST /predict a 500."""
    trust = _trust(rendered(), "apigateway-invoke")
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
