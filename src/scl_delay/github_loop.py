"""The GitHub loop's decisions, out of the workflow YAML: which PR a push to main merged, whether the merged
tree is the tree that was trained, whether a newer merge supersedes this one, whether a PR trains, and
which training jobs a cancelled run leaves behind. The YAML only wires steps to
``python -m scl_delay.github_loop``. (Whether a failed deploy is rolled back is deploy.py's decision:
``aws/deploy.py`` ``deploy_with_rollback``, only after it changed the endpoint.)

Talks to GitHub's REST API through ``github_api`` (standard library; ``$GITHUB_API_URL``, ``$GITHUB_TOKEN``);
no boto3 here: the cancellation clean-up's AWS call lives in ``aws/stop_jobs.py``, imported only by its
command.
What each GitHub fact rests on is in docs/verified-github.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .github_api import GitHubAPI, GitHubError

# Everything in the tree that changes the trained model or the image that serves it. The workflows'
# `paths` filters (deploy.yml) list the same entries; a test keeps them equal.
MODEL_PATHS = (
    "src",
    "container",
    "hyperparameters.json",
    "train.py",
    "serve.py",
    "pyproject.toml",
    "uv.lock",
)
SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
FULL_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
FORCE_LABEL = "train"
DEPENDABOT = "dependabot[bot]"
TRAIN_CHECK = "build, push, train on SageMaker"  # pr-train.yml's training job name (a test keeps them equal)


class NotMergedError(InputError):
    """The pushed commit did not come from a merged pull request: nothing was trained for it."""


# ------------------------------------------------------------------------------------ commits, PRs and trees


def expand_sha(api: GitHubAPI, repo: str, ref: str) -> str:
    """The full SHA of a (possibly short) commit SHA, checked to exist in the repository."""
    ref = ref.strip().lower()
    if not SHA_RE.match(ref):
        raise InputError(f"not a commit SHA (7 to 40 hex digits): {ref!r}")
    try:
        sha = api.get(f"repos/{repo}/commits/{ref}")["sha"]
    except GitHubError as e:
        if e.status in (404, 422):
            raise InputError(f"no commit {ref} in {repo} (or the short SHA is ambiguous)") from None
        raise
    return sha


def find_merged_pr(
    api: GitHubAPI,
    repo: str,
    sha: str,
    attempts: int = 6,
    delay_s: float = 5.0,
    sleep: Callable[[float], None] | None = None,
) -> dict:
    """The pull request whose ``merge_commit_sha`` is ``sha`` (merge, squash and rebase alike).

    Right after a merge, GitHub can briefly list no PR for the new commit: ask again a few times before
    concluding that the commit was pushed without a PR.
    """
    sleep = sleep or time.sleep
    listed: list = []
    for attempt in range(attempts):
        listed = api.get(f"repos/{repo}/commits/{sha}/pulls", per_page=100) or []
        merged = [pr for pr in listed if pr.get("merge_commit_sha") == sha and pr.get("merged_at")]
        if merged:
            return merged[0]
        if attempt + 1 < attempts:
            sleep(delay_s)
    others = ", ".join(f"#{pr.get('number')}" for pr in listed) or "none"
    raise NotMergedError(
        f"commit {sha} is not the merge commit of any pull request (PRs listed for it: {others}); "
        "a commit pushed to main without a PR was never trained: nothing to deploy"
    )


def model_entries(api: GitHubAPI, repo: str, sha: str) -> dict[str, str]:
    """``{path: git object id}`` of the top-level MODEL_PATHS in the commit's tree (absent paths left out).

    Git ids are content hashes, so two commits whose entries have the same ids have byte-identical model
    code, container, hyperparameters and lock file, however the commits are related.
    """
    tree_sha = api.get(f"repos/{repo}/commits/{sha}")["commit"]["tree"]["sha"]
    tree = api.get(f"repos/{repo}/git/trees/{tree_sha}")
    return {entry["path"]: entry["sha"] for entry in tree["tree"] if entry["path"] in MODEL_PATHS}


def model_differences(api: GitHubAPI, repo: str, a: str, b: str) -> list[str]:
    """The MODEL_PATHS whose content differs between commits ``a`` and ``b`` (added or removed counts)."""
    if a == b:
        return []
    left, right = model_entries(api, repo, a), model_entries(api, repo, b)
    return sorted(p for p in set(left) | set(right) if left.get(p) != right.get(p))


# ------------------------------------------------------------------------------------------ the PR decision


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str  # one word: model-change, no-model-change, draft, not-main, fork, dependabot
    summary: str  # markdown for the job summary


def decide_training(
    pr: Mapping, repo: str, default_branch: str, differences: list[str] | None, actor: str | None = None
) -> TrainingDecision:
    """Whether a ``pull_request`` event's PR trains. ``differences`` = model paths changed (None: unknown);
    ``actor`` = who triggered the event (GitHub runs Dependabot's events as if they came from a fork)."""
    number, labels = pr["number"], {label["name"] for label in pr.get("labels", [])}
    forced = FORCE_LABEL in labels
    head_repo = (pr.get("head", {}).get("repo") or {}).get("full_name")
    if head_repo != repo:
        return TrainingDecision(
            False, "fork", fork_summary(number, head_repo, pr["head"]["sha"], differences)
        )
    if actor == DEPENDABOT:
        return TrainingDecision(
            False, "dependabot", dependabot_summary(number, pr["head"]["ref"], differences)
        )
    if pr.get("draft") and not forced:
        return TrainingDecision(
            False, "draft", _not_training(number, "it is a draft", "mark it ready for review")
        )
    base = pr.get("base", {}).get("ref")
    if base != default_branch and not forced:
        return TrainingDecision(
            False, "not-main", _not_training(number, f"it targets `{base}`, not `{default_branch}`", None)
        )
    if differences is not None and not differences:
        return TrainingDecision(
            False,
            "no-model-change",
            f"## No training for PR #{number}\n\nThe PR changes none of {_paths()}: the model that is "
            "live stays what is trained for it, and merging it deploys nothing.\n",
        )
    changed = ", ".join(f"`{p}`" for p in differences) if differences else "unknown paths"
    why = (
        f"label `{FORCE_LABEL}`" if forced and (pr.get("draft") or base != default_branch) else "model change"
    )
    return TrainingDecision(
        True, "model-change", f"## Training PR #{number}\n\nChanged: {changed} ({why}).\n"
    )


def _paths() -> str:
    return ", ".join(f"`{p}`" for p in MODEL_PATHS)


def _not_training(number: int, why: str, natural: str | None) -> str:
    how = f"{natural[0].upper()}{natural[1:]}, or add" if natural else "Add"
    return (
        f"## No training for PR #{number}\n\nIt does not train because {why}.\n\n"
        f"{how} the label `{FORCE_LABEL}` and push a commit (or close and reopen the PR) to train it anyway. "
        "Label events alone do not start a run, so that adding an unrelated label never replaces the "
        "result of the required `training` check.\n"
    )


def cache_sources(api: GitHubAPI, repo: str, event: Mapping) -> list[str]:
    """Commits whose image build cache this PR's build can reuse: its previous push, and the PR head that
    was trained for its base commit (the tree main has, when the merge was up to date)."""
    sources = []
    before = event.get("before")
    if event.get("action") == "synchronize" and before and FULL_SHA_RE.match(before):
        sources.append(before)
    try:
        base_pr = find_merged_pr(api, repo, event["pull_request"]["base"]["sha"], attempts=1)
        sources.append(base_pr["head"]["sha"])
    except (NotMergedError, GitHubError):
        pass  # the base was pushed without a PR: no cache to name
    return sources


def dependabot_summary(number: int, branch: str, differences: list[str] | None) -> str:
    """Why a run Dependabot triggered did not train, and how a maintainer trains its PR."""
    return (
        f"## No training for PR #{number}: this run was triggered by Dependabot\n\n"
        "GitHub runs the workflows Dependabot triggers as if they came from a fork: a read-only token and no "
        "OIDC token, so this run cannot assume the AWS training role.\n\n"
        f"{_model_change_sentence(differences)}\n\n"
        "A maintainer trains it by pushing a commit to its branch (the run is then theirs):\n\n"
        "```sh\n"
        f"git fetch origin {branch} && git switch {branch}\n"
        'git commit --allow-empty -m "Train this dependency update" && git push origin HEAD\n'
        "```\n"
    )


def _model_change_sentence(differences: list[str] | None) -> str:
    if differences:
        return (
            "It changes "
            + ", ".join(f"`{p}`" for p in differences)
            + ", so it needs a trained model before merging."
        )
    if differences is not None:
        return "It changes nothing that affects the model, so merging it deploys nothing."
    return "Whether it changes the model could not be determined."


def fork_summary(number: int, head_repo: str | None, head_sha: str, differences: list[str] | None) -> str:
    """Why a fork's PR did not train, and how a maintainer trains it."""
    changed = _model_change_sentence(differences)
    return (
        f"## No training for PR #{number}: it comes from the fork `{head_repo or 'unknown'}`\n\n"
        "GitHub gives workflows triggered by a fork's pull request no OIDC token, so this run cannot assume "
        f"the AWS training role, and it must not: the fork's code would run with this account's role.\n\n"
        f"{changed}\n\n"
        "A maintainer who has read the change can train it by pushing its head commit to a branch of this "
        "repository and opening a PR from that branch (the fork's PR can then be closed in its favour):\n\n"
        "```sh\n"
        f"gh pr checkout {number}\n"
        f"git push origin HEAD:refs/heads/train/pr-{number}\n"
        f"gh pr create --head train/pr-{number} --base main --fill\n"
        "```\n\n"
        f"Head commit `{head_sha}`.\n"
    )


# -------------------------------------------------------------------------------------- the deploy decision


@dataclass
class DeployPlan:
    action: str  # deploy | skip | refuse
    merge_commit: str
    message: str
    trained_commit: str | None = None
    pr_number: int | None = None
    merged_by: str | None = None
    differences: list[str] = field(default_factory=list)

    def outputs(self) -> dict[str, str]:
        return {
            "action": self.action,
            "merge_commit": self.merge_commit,
            "commit": self.trained_commit or "",
            "pr_number": str(self.pr_number or ""),
            "merged_by": self.merged_by or "",
        }


def plan_deploy(
    api: GitHubAPI, repo: str, merge_commit: str, branch: str, find_pr=find_merged_pr
) -> DeployPlan:
    """What to do for a commit on ``branch``: deploy its PR's trained model, skip (superseded), or refuse."""
    pr = find_pr(api, repo, merge_commit)
    trained, number = pr["head"]["sha"], pr["number"]
    merged_by = ((api.get(f"repos/{repo}/pulls/{number}") or {}).get("merged_by") or {}).get("login")
    differences = model_differences(api, repo, trained, merge_commit)
    if differences:
        return DeployPlan(
            "refuse",
            merge_commit,
            f"PR #{number} was trained on `{trained}`, but the merged tree `{merge_commit}` differs from it "
            "in "
            + ", ".join(f"`{p}`" for p in differences)
            + ": the model trained is not the model of what is on "
            f"`{branch}`, so nothing is deployed. This happens when a PR is merged without being up to date "
            "with its base; the ruleset in `.github/rulesets/main.json` requires that. To ship this state, "
            "open a PR that brings these changes (or reverts them) from an up-to-date branch: it trains on "
            "exactly the tree it merges.",
            trained,
            number,
            merged_by,
            differences,
        )
    trained_check = training_conclusion(api, repo, trained)
    if trained_check != "success":
        return DeployPlan(
            "refuse",
            merge_commit,
            f"PR #{number} was merged, but its head `{trained}` has no successful training (check "
            f"`{TRAIN_CHECK}`: {trained_check or 'never ran'}): there is no model to deploy. This happens "
            "when "
            "a PR is merged before its training finished, after it failed, or past the required `training` "
            "check. Nothing is deployed; ship the change through a PR whose training succeeds.",
            trained,
            number,
            merged_by,
        )
    tip = api.get(f"repos/{repo}/commits/{branch}")["sha"]
    newer = model_differences(api, repo, merge_commit, tip) if tip != merge_commit else []
    if newer:
        return DeployPlan(
            "skip",
            merge_commit,
            f"Not deployed on its own: `{branch}` has moved on to `{tip}`, which changes "
            + ", ".join(f"`{p}`" for p in newer)
            + " again. The deploy run for that push ships a model trained on a tree that contains this merge "
            f"(PR #{number}), so deploying this one first would only be replaced.",
            trained,
            number,
            merged_by,
        )
    return DeployPlan(
        "deploy",
        merge_commit,
        f"Deploying the model trained for PR #{number} on `{trained}`, whose model files are identical to "
        f"the merge `{merge_commit}`.",
        trained,
        number,
        merged_by,
    )


def training_conclusion(api: GitHubAPI, repo: str, sha: str) -> str | None:
    """ "success" when pr-train's training job succeeded for ``sha`` in any run (re-runs, ready-for-review),
    else the latest conclusion (failure, cancelled, ...; None while running or when it never ran)."""
    # filter=all: the default ("latest") hides an earlier success behind a later re-run's cancellation
    answer = api.get(
        f"repos/{repo}/commits/{sha}/check-runs", check_name=TRAIN_CHECK, filter="all", per_page=100
    )
    runs = answer.get("check_runs", [])
    if any(run.get("conclusion") == "success" for run in runs):
        return "success"
    latest = max(runs, key=lambda run: run.get("started_at") or "", default=None)
    return latest.get("conclusion") if latest else None


def superseded_runs(runs: list[Mapping], current_run_id: int) -> list[Mapping]:
    """Runs of the deploy workflow that GitHub cancelled since the last successful one, older than this run.

    A concurrency group holds one running and one pending run; a newer run cancels the pending one. Those
    merges are then shipped by this run (their trees are ancestors of this one), and are named in its summary.
    """
    skipped = []
    for run in sorted(runs, key=lambda r: r["id"], reverse=True):
        if run["id"] >= current_run_id:
            continue
        if run.get("conclusion") == "success":
            break
        if run.get("conclusion") == "cancelled":
            skipped.append(run)
    return skipped


# ------------------------------------------------------------------------------------------------- the CLI


def _write_outputs(values: Mapping[str, str], env: Mapping[str, str]) -> None:
    path = env.get("GITHUB_OUTPUT")
    lines = [f"{k}={str(v).replace(chr(10), ' ')}" for k, v in values.items()]
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def _write_summary(markdown: str, env: Mapping[str, str]) -> None:
    path = env.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown.rstrip() + "\n\n")
    print(markdown, flush=True)


def _pr_plan(args, env, api: GitHubAPI) -> int:
    event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    pr = event["pull_request"]
    same_repo = (pr.get("head", {}).get("repo") or {}).get("full_name") == args.repo
    differences = None
    try:
        differences = model_differences(api, args.repo, pr["base"]["sha"], pr["head"]["sha"])
    except GitHubError as e:
        if same_repo:
            raise
        print(f"could not compare the fork's trees: {e}", file=sys.stderr)
    actor = (event.get("sender") or {}).get("login")
    decision = decide_training(pr, args.repo, args.default_branch, differences, actor)
    caches = cache_sources(api, args.repo, event) if decision.train else []
    _write_outputs(
        {"train": str(decision.train).lower(), "reason": decision.reason, "cache_from": " ".join(caches)}, env
    )
    _write_summary(decision.summary, env)
    # A fork's (or Dependabot's) run that changes the model fails the required check: it cannot train here,
    # and merging it would ship an untrained model.
    return 1 if decision.reason in ("fork", "dependabot") and differences != [] else 0


def _deploy_plan(args, env, api: GitHubAPI) -> int:
    sha = expand_sha(api, args.repo, args.commit or args.sha)
    plan = plan_deploy(api, args.repo, sha, args.branch)
    _write_outputs(plan.outputs(), env)
    lines = [f"## Deploy plan for `{sha}`: {plan.action}", "", plan.message, ""]
    if plan.action == "deploy" and args.workflow and args.run_id:
        runs = api.get(
            f"repos/{args.repo}/actions/workflows/{args.workflow}/runs", branch=args.branch, per_page=50
        )
        skipped = superseded_runs(runs.get("workflow_runs", []), int(args.run_id))
        if skipped:
            lines += [
                "Merges whose deploy runs GitHub cancelled while they waited (shipped by this one):",
                "",
            ]
            lines += [
                f"- `{r['head_sha']}` ([run {r.get('run_number', r['id'])}]({r.get('html_url', '')}))"
                for r in skipped
            ]
            lines.append("")
    _write_summary("\n".join(lines), env)
    if plan.action == "refuse":
        print(f"::error::{plan.message}", flush=True)
        return 1
    return 0


def _stop_training_jobs(args, env, api) -> int:
    from .aws.clients import make_clients, region_from
    from .aws.stop_jobs import stop_training_jobs

    clients = make_clients(region_from(env, None))
    stopped = stop_training_jobs(clients.sagemaker, pr_number=args.pr, repo=args.repo, commit=args.commit)
    _write_summary(
        "## Cancelled: training jobs stopped\n\n"
        + (
            "\n".join(f"- `{name}`" for name in stopped)
            if stopped
            else "No training job of this run was running."
        )
        + "\n",
        env,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scl_delay.github_loop", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("pr-plan", help="does this pull_request event train? (outputs train, reason)")
    pr.add_argument("--event", help="the event payload ($GITHUB_EVENT_PATH)")
    pr.add_argument("--repo", help="owner/name ($GITHUB_REPOSITORY)")
    pr.add_argument("--default-branch", default="main")
    pr.set_defaults(run=_pr_plan)
    dp = sub.add_parser("deploy-plan", help="what a push to main deploys (outputs action, commit, pr_number)")
    dp.add_argument("--repo", help="owner/name ($GITHUB_REPOSITORY)")
    dp.add_argument("--sha", help="the pushed commit ($GITHUB_SHA)")
    dp.add_argument("--commit", help="a commit on the branch to deploy instead (short SHAs are expanded)")
    dp.add_argument("--branch", default="main")
    dp.add_argument("--workflow", help="this workflow's file name, to list superseded runs (deploy.yml)")
    dp.add_argument("--run-id", help="this run's id ($GITHUB_RUN_ID)")
    dp.set_defaults(run=_deploy_plan)
    st = sub.add_parser("stop-training-jobs", help="stop this PR's running SageMaker training jobs (by tag)")
    st.add_argument("--pr", required=True)
    st.add_argument("--repo", help="owner/name ($GITHUB_REPOSITORY)")
    st.add_argument("--commit", help="only the jobs trained for this commit (the run's head)")
    st.set_defaults(run=_stop_training_jobs)
    return p


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    for attr, var in (
        ("repo", "GITHUB_REPOSITORY"),
        ("event", "GITHUB_EVENT_PATH"),
        ("sha", "GITHUB_SHA"),
        ("run_id", "GITHUB_RUN_ID"),
    ):
        if hasattr(args, attr) and not getattr(args, attr):
            setattr(args, attr, env.get(var))
    if not args.repo:
        print("error: --repo (or $GITHUB_REPOSITORY) is required", file=sys.stderr)
        return 2
    try:
        return args.run(args, env, GitHubAPI.from_env(env))
    except InputError as e:
        _fail(f"{args.command}: {e}", env)
        return 2
    except GitHubError as e:
        _fail(f"{args.command}: GitHub API: {e}", env)
        return 1


def _fail(message: str, env: Mapping[str, str]) -> None:
    """An annotation on the run, and the same sentence in the job summary, where people look first."""
    print(f"::error::{message}", flush=True)
    _write_summary(f"## Stopped\n\n{message}\n", env)


if __name__ == "__main__":
    sys.exit(main())
