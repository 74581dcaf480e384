"""The GitHub Actions workflows: linted with tools that install offline from PyPI, plus the house rules.

- zizmor --offline: security (unpinned actions, template injection, excessive permissions, ...)
- check-jsonschema --builtin-schema vendor.github-workflows: structure (the schema ships in the wheel)
- our conventions: actions pinned to a full SHA with a version comment, no credentials left in
  .git, no ``${{ }}`` inside ``run:``, least-privilege permissions, the triggers the pipeline needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # PyYAML: in the dev environment through moto[server]

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = ("ci.yml", "pr-train.yml", "deploy.yml")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+\.\d+\.\d+\s*$")
ANY_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)")


def _tool(name: str) -> str:
    """The tool from this interpreter's venv (.venv/bin), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup` (it is in the dev dependency group)")
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOW_DIR / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict):
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def test_the_three_workflows_exist():
    missing = [name for name in WORKFLOWS if not (WORKFLOW_DIR / name).is_file()]
    assert not missing, f"missing workflows in {WORKFLOW_DIR}: {missing}"


def test_zizmor_offline_finds_nothing():
    result = _run(_tool("zizmor"), "--offline", "--no-progress", "--color", "never", ".github/workflows")
    assert result.returncode == 0, (
        f"zizmor exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def test_workflows_match_the_github_workflow_schema():
    files = [f".github/workflows/{name}" for name in WORKFLOWS]
    result = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)
    assert result.returncode == 0, (
        f"check-jsonschema exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("name", WORKFLOWS)
def test_actions_are_pinned_to_a_full_sha_with_a_version_comment(name):
    bad = []
    for number, line in enumerate((WORKFLOW_DIR / name).read_text(encoding="utf-8").splitlines(), 1):
        if ANY_USES.match(line) and not PINNED_USES.match(line):
            bad.append(f"{name}:{number}: {line.strip()}")
    assert not bad, "pin every action as owner/repo@<40-hex sha> # vX.Y.Z:\n" + "\n".join(bad)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_checkout_keeps_no_credentials_and_run_blocks_have_no_expressions(name):
    problems = []
    for job_id, _, step in _steps(_load(name)):
        label = f"{name}: job {job_id}, step {step.get('name', step.get('uses', '?'))!r}"
        checkout = str(step.get("uses", "")).startswith("actions/checkout@")
        if checkout and (step.get("with") or {}).get("persist-credentials") is not False:
            problems.append(f"{label}: checkout without persist-credentials: false")
        if "${{" in str(step.get("run", "")):
            problems.append(f"{label}: ${{{{ }}}} inside run: (pass values through env:)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_permissions_are_least_privilege(name):
    doc = _load(name)
    assert doc.get("permissions") == {}, f"{name}: set `permissions: {{}}` at the top and grant per job"
    assert "pull_request_target" not in doc["on"], f"{name}: never run PR code under pull_request_target"
    for job_id, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{name}: job {job_id} must declare its permissions"
        uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
        needs_oidc = any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
        assert (perms.get("id-token") == "write") == needs_oidc, (
            f"{name}: job {job_id}: id-token: write exactly when it assumes an AWS role"
        )
        assert all(v in ("read", "write", "none") for v in perms.values()), f"{name}: job {job_id}: {perms}"
        if perms.get("pull-requests") == "write":
            assert not needs_oidc, f"{name}: job {job_id} holds both an AWS role and pull-requests: write"


def test_ci_runs_make_test_on_every_push_and_pull_request():
    doc = _load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    runs = [str(step.get("run", "")) for _, _, step in _steps(doc)]
    assert any(run.strip() == "make test" for run in runs), runs


def test_pr_train_builds_trains_and_comments_once():
    doc = _load("pr-train.yml")
    paths = doc["on"]["pull_request"]["paths"]
    for path in (
        "src/**",
        "container/**",
        "hyperparameters.json",
        "train.py",
        "serve.py",
        "pyproject.toml",
        "uv.lock",
    ):
        assert path in paths, f"pr-train must trigger on {path}"
    assert doc["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in doc["concurrency"]["group"]
    text = (WORKFLOW_DIR / "pr-train.yml").read_text(encoding="utf-8")
    for needle in (
        "container/Dockerfile",
        "training_job.py",
        "--report report.md",
        "--result training_result.json",
        "GITHUB_STEP_SUMMARY",
        "actions/upload-artifact@",
        "<!-- scl-delay-training-report -->",
    ):
        assert needle in text, f"pr-train.yml lacks {needle!r}"


def test_deploy_is_protected_serialised_and_smoke_tested():
    doc = _load("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in doc["on"]
    assert doc["concurrency"]["cancel-in-progress"] is False
    job = doc["jobs"]["deploy"]
    assert job["environment"]["name"] == "production"
    text = (WORKFLOW_DIR / "deploy.yml").read_text(encoding="utf-8")
    # The API key value is fetched at run time and masked before any use.
    fetch, mask = text.find("get-api-key --api-key"), text.find("::add-mask::")
    assert "--include-value" in text and 0 <= fetch < mask < text.find("x-api-key"), (
        "fetch the API key with get-api-key --include-value, ::add-mask:: it, then send it"
    )
    assert "previous_training_job" in text and '--training-job "$PREVIOUS_TRAINING_JOB"' in text
