"""The GitHub Actions workflows: linted with tools that install offline from PyPI, plus the house rules.

- zizmor --offline: security (unpinned actions, template injection, excessive permissions, ...)
- check-jsonschema --builtin-schema vendor.github-workflows: structure (the schema ships in the wheel)
- our conventions: actions pinned to a full SHA with a version comment, no credentials left in
  .git, no ``${{ }}`` inside ``run:``, least-privilege permissions, the triggers the pipeline needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # PyYAML: in the dev environment through moto[server]

from scl_delay.github_loop import MODEL_PATHS, TRAIN_CHECK

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = ("ci.yml", "pr-train.yml", "deploy.yml", "teardown.yml")
RULESET = ROOT / ".github" / "rulesets" / "main.json"
# Node 24 releases, each resolved to its commit in a snapshot of the action's repository and its action.yml
# (`runs.using: node24`, and the inputs used here) read at that commit: see docs/verified-github.md.
NODE24_ACTIONS = {
    "actions/checkout": "08c6903cd8c0fde910a37f88322edcfb5dd907a8",  # v5.0.0
    "actions/setup-python": "ece7cb06caefa5fff74198d8649806c4678c61a1",  # v6.3.0
    "aws-actions/configure-aws-credentials": "e6de054238d6b7531b4efff3b6587d9aade6a06c",  # v6.2.3
    "aws-actions/amazon-ecr-login": "03f1aad4c6c7ffd436567f42f9384779290529bd",  # v2.1.7
    "actions/upload-artifact": "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",  # v7.0.0
    "actions/download-artifact": "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",  # v8.0.1
}
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
        f"check-jsonschema exited {result.returncode}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
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


def _job_step(doc: dict, job_id: str, needle: str) -> dict:
    steps = [
        step for step in doc["jobs"][job_id]["steps"] if needle in str(step.get("run", step.get("uses", "")))
    ]
    assert len(steps) == 1, f"job {job_id}: expected one step with {needle!r}, found {len(steps)}"
    return steps[0]


def _flag(run: str, flag: str) -> float:
    match = re.search(rf"{re.escape(flag)}\s+(\d+)", run)
    assert match, f"{flag} missing from:\n{run}"
    return float(match.group(1))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_action_is_a_verified_node24_release(name):
    old = []
    for line in (WORKFLOW_DIR / name).read_text(encoding="utf-8").splitlines():
        match = PINNED_USES.match(line)
        if match and NODE24_ACTIONS.get(match.group(1)) != match.group(2):
            old.append(line.strip())
    assert not old, "runners no longer provide Node 20; pin the verified Node 24 releases:\n" + "\n".join(old)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_long_running_python_steps_are_execd_so_they_receive_the_cancellation_signal(name):
    """GitHub signals the step's shell on cancellation; only an exec'd program gets the SIGTERM itself."""
    launch = re.compile(r"python\S*\s+(training_job\.py|deploy\.py|-m scl_delay\.github_loop)")
    for job_id, _, step in _steps(_load(name)):
        for line in str(step.get("run", "")).splitlines():
            if launch.search(line):
                assert line.lstrip().startswith("exec "), f"{name}: job {job_id}: not exec'd: {line.strip()}"


def test_ci_runs_make_test_once_per_pull_request():
    doc = _load("ci.yml")
    assert doc["on"]["push"] == {"branches": ["main"]}, "a branch with a PR would run twice (push and PR)"
    assert "pull_request" in doc["on"]
    runs = [str(step.get("run", "")) for _, _, step in _steps(doc)]
    assert any(run.strip() == "make test" for run in runs), runs


def test_pr_train_has_no_paths_filter_and_its_required_check_always_reports():
    doc = _load("pr-train.yml")
    trigger = doc["on"]["pull_request"]
    assert "paths" not in trigger and "paths-ignore" not in trigger, (
        "a skipped workflow leaves the check pending"
    )
    assert set(trigger["types"]) == {"opened", "synchronize", "reopened", "ready_for_review"}
    assert "labeled" not in trigger["types"], "a label event must not replace the training check's result"
    assert doc["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in doc["concurrency"]["group"]
    assert doc["jobs"]["train"]["name"] == TRAIN_CHECK, "deploy's plan looks the training check up by name"
    gate = doc["jobs"]["training"]
    assert gate["name"] == "training" and gate["if"] == "${{ always() }}"
    assert set(gate["needs"]) == {"plan", "train"}
    assert doc["jobs"]["train"]["if"] == "needs.plan.outputs.train == 'true'"
    _job_step(doc, "plan", "github_loop pr-plan")
    assert "pull-requests" not in doc["jobs"]["plan"]["permissions"]


def test_pr_train_stops_its_job_when_cancelled_and_waits_less_than_its_timeout():
    doc = _load("pr-train.yml")
    job = doc["jobs"]["train"]
    train = _job_step(doc, "train", "training_job.py")["run"]
    wait, runtime = _flag(train, "--wait-timeout-minutes"), _flag(train, "--max-runtime-minutes")
    assert runtime < wait < job["timeout-minutes"], (runtime, wait, job["timeout-minutes"])
    stop = _job_step(doc, "train", "stop-training-jobs")
    assert "cancelled()" in stop["if"]
    assert '--pr "$PR_NUMBER"' in stop["run"] and '--commit "$HEAD_SHA"' in stop["run"]
    creds = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws"))
    assert int(creds["with"]["role-duration-seconds"]) > 60 * job["timeout-minutes"]


def test_pr_train_builds_with_a_layer_cache_and_comments_once():
    doc = _load("pr-train.yml")
    build = _job_step(doc, "train", "docker buildx build")["run"]
    assert "--driver docker-container" in build and "--cache-to" in build and "--cache-from" in build
    assert "image-manifest=true" in build, "ECR rejects a cache image index"
    text = (WORKFLOW_DIR / "pr-train.yml").read_text(encoding="utf-8")
    for needle in (
        "container/Dockerfile",
        "--report report.md",
        "--result training_result.json",
        "GITHUB_STEP_SUMMARY",
        "actions/upload-artifact@",
        "<!-- scl-delay-training-report -->",
    ):
        assert needle in text, f"pr-train.yml lacks {needle!r}"


def test_deploy_triggers_on_exactly_the_model_paths_the_tree_comparison_checks():
    doc = _load("deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    globs = {p if "." in p else f"{p}/**" for p in MODEL_PATHS}
    assert set(doc["on"]["push"]["paths"]) == globs


def test_deploy_is_planned_without_aws_then_serialised_protected_and_execd():
    doc = _load("deploy.yml")
    assert "workflow_dispatch" in doc["on"]
    assert doc["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    plan = doc["jobs"]["plan"]
    assert "id-token" not in plan["permissions"] and plan["permissions"]["actions"] == "read"
    assert plan["permissions"]["checks"] == "read", "the plan reads the trained commit's training check"
    assert "deploy-plan" in _job_step(doc, "plan", "github_loop")["run"]
    job = doc["jobs"]["deploy"]
    assert "needs.plan.outputs.action == 'deploy'" in job["if"]
    assert job["environment"]["name"] == "production"
    run = _job_step(doc, "deploy", "bin/python deploy.py")["run"]
    assert "--smoke-test" in run and '--commit "$COMMIT"' in run and '--merge-commit "$MERGE_COMMIT"' in run
    # deploy.py waits the attempts, an update at least the blue/green maximum (62 min); twice with a rollback
    waited_min = max(62, _flag(run, "--wait-delay-seconds") * _flag(run, "--wait-max-attempts") / 60)
    assert 2 * waited_min < job["timeout-minutes"], "a deploy and its rollback must both fit in the job"
    creds = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws"))
    assert int(creds["with"]["role-duration-seconds"]) > 60 * job["timeout-minutes"], (
        "credentials outlive the job"
    )
    text = (WORKFLOW_DIR / "deploy.yml").read_text(encoding="utf-8")
    assert "--force" not in text.replace("args+=(--force)", ""), "the only --force is the operator's input"


def test_teardown_is_manual_confirmed_before_any_aws_call_and_never_concurrent_with_a_deploy():
    doc = _load("teardown.yml")
    assert set(doc["on"]) == {"workflow_dispatch"}
    assert doc["on"]["workflow_dispatch"]["inputs"]["confirm"]["required"] is True
    assert doc["concurrency"]["group"] == _load("deploy.yml")["concurrency"]["group"]
    job = doc["jobs"]["teardown"]
    assert job["environment"] == "production"
    steps = job["steps"]
    assert '"$CONFIRM" != "$SCL_ENDPOINT_NAME"' in steps[0]["run"] and "exit 1" in steps[0]["run"]
    assert "deploy.py" in steps[-1]["run"] and "--teardown" in steps[-1]["run"]


def test_the_ruleset_requires_the_checks_the_workflows_report_on_an_up_to_date_branch():
    ruleset = json.loads(RULESET.read_text(encoding="utf-8"))
    assert ruleset["target"] == "branch" and ruleset["enforcement"] == "active"
    assert ruleset["conditions"]["ref_name"]["include"] == ["~DEFAULT_BRANCH"]
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    assert {"pull_request", "required_status_checks", "non_fast_forward", "deletion"} <= set(rules)
    checks = rules["required_status_checks"]
    assert checks["strict_required_status_checks_policy"] is True, "the PR must be trained on main's latest"
    contexts = {c["context"] for c in checks["required_status_checks"]}
    assert {c["integration_id"] for c in checks["required_status_checks"]} == {15368}  # GitHub Actions
    reported = {job.get("name", job_id) for name in WORKFLOWS for job_id, job in _load(name)["jobs"].items()}
    assert contexts == {"training", "make test"} and contexts <= reported


@pytest.mark.parametrize(
    ("name", "job_id", "needle", "parser"),
    [
        ("pr-train.yml", "train", "training_job.py", "training_parser"),
        ("deploy.yml", "deploy", "bin/python deploy.py", "deploy_parser"),
        ("teardown.yml", "teardown", "deploy.py", "deploy_parser"),
    ],
)
def test_every_flag_a_workflow_passes_is_one_the_script_accepts(name, job_id, needle, parser):
    from scl_delay.aws import cli

    known = {opt for action in getattr(cli, parser)()._actions for opt in action.option_strings}
    run = _job_step(_load(name), job_id, needle)["run"]
    passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", run))
    assert passed and passed <= known, f"{name}: unknown to {parser}: {sorted(passed - known)}"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_github_loop_call_names_a_command_and_flags_it_accepts(name):
    import argparse

    from scl_delay.github_loop import parser

    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for job_id, _, step in _steps(_load(name)):
        run = str(step.get("run", ""))
        if "github_loop" not in run:
            continue
        named = [c for c in commands if re.search(rf"(?<![\w-]){c}(?![\w-])", run)]
        assert len(named) == 1, f"{name}: job {job_id}: which github_loop command? {named}"
        known = {opt for action in commands[named[0]]._actions for opt in action.option_strings}
        passed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", run))
        assert passed <= known, f"{name}: job {job_id}: {named[0]} does not accept {sorted(passed - known)}"


def _trusted_subject_suffixes(role: str) -> set[str]:
    """The `:...` endings of the OIDC subjects the template's trust policy for ``role`` names (both forms)."""
    text = (ROOT / "infra" / "scl-delay.yaml").read_text(encoding="utf-8")
    block = re.search(rf"(?ms)^  {role}:\n(.*?)^      Policies:", text)
    assert block, f"no {role} in infra/scl-delay.yaml"
    return set(re.findall(r'!Sub "repo:[^"]*?\}(:[a-z_:]+[a-z_])"', block.group(1)))


@pytest.mark.parametrize(
    ("name", "role", "suffix"),
    [
        ("pr-train.yml", "PrTrainingRole", ":pull_request"),
        ("deploy.yml", "DeployRole", ":environment:production"),
        ("teardown.yml", "DeployRole", ":environment:production"),
    ],
)
def test_each_job_that_assumes_a_role_carries_the_subject_its_trust_policy_names(name, role, suffix):
    """GitHub's `sub` is `...:pull_request` for a pull_request job without an environment, and
    `...:environment:NAME` for a job in an environment; the template trusts exactly one per role."""
    assert _trusted_subject_suffixes(role) == {suffix}
    for job_id, job in _load(name)["jobs"].items():
        uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
        if not any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses):
            continue
        environment = job.get("environment")
        environment = environment.get("name") if isinstance(environment, dict) else environment
        if suffix == ":pull_request":
            assert environment is None, f"{name}: job {job_id} in an environment would carry another sub"
            assert "pull_request" in _load(name)["on"]
        else:
            assert f":environment:{environment}" == suffix, (
                f"{name}: job {job_id}: environment {environment!r}"
            )


def test_the_readme_setup_sets_every_variable_the_workflows_read():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    set_there = set(re.findall(r"^gh variable set ([A-Z][A-Z0-9_]+) ", readme, re.MULTILINE))
    read = {
        v
        for name in WORKFLOWS
        for v in re.findall(r"vars\.([A-Z][A-Z0-9_]+)", (WORKFLOW_DIR / name).read_text())
    }
    optional = {"TRAINING_INSTANCE_TYPE", "SCL_ENDPOINT_NAME"}  # each has a default where it is read
    assert read - optional <= set_there, f"README's setup misses {sorted(read - optional - set_there)}"
    assert set_there <= read, f"README's setup sets variables no workflow reads: {sorted(set_there - read)}"
    assert 'gh api --method POST "repos/{owner}/{repo}/rulesets" --input .github/rulesets/main.json' in readme
