"""The GitHub loop's decisions (scl_delay.github_loop) against GitHub REST answers served over real HTTP.

The answers in ``recorded/`` have the shape of GitHub's REST API (api.github.com, API version 2022-11-28),
trimmed to the fields a real answer carries around the ones the code reads; they were written from GitHub's
documented examples, not captured from a live repository (this machine has no GitHub access). A stand-in
``http.server`` on 127.0.0.1 serves them, so the stdlib client, its headers and its error handling are
exercised too. More lenient than GitHub: no rate limits, no pagination beyond one page, and any token works.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scl_delay import github_api
from scl_delay import github_loop as loop
from scl_delay.errors import InputError

RECORDED = Path(__file__).parent / "recorded"
REPO = "acme/scl-delay"
SHAS = json.loads((RECORDED / "shas.json").read_text())


def recorded(name: str):
    return json.loads((RECORDED / f"{name}.json").read_text())


class StandInGitHub:
    """Serves ``{path: [answer, ...]}``; each request takes the next answer (the last one repeats)."""

    def __init__(self):
        self.routes: dict[str, list[tuple[int, object]]] = {}
        self.requests: list[tuple[str, dict]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                stand_in.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                path = self.path.split("?", 1)[0]
                answers = stand_in.routes.get(path)
                status, body = (
                    (answers.pop(0) if len(answers) > 1 else answers[0]) if answers else (404, None)
                )
                payload = json.dumps(body if body is not None else {"message": "Not Found"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, *answers, status: int = 200) -> None:
        self.routes[f"/{path}"] = [(status, a) for a in answers]

    def commit(self, key: str, as_ref: str | None = None) -> None:
        """The commit and its tree, as GET commits/{ref} and GET git/trees/{tree} answer them."""
        commit = recorded(f"commit-{key}")
        self.answer(f"repos/{REPO}/commits/{as_ref or commit['sha']}", commit)
        self.answer(f"repos/{REPO}/git/trees/{commit['commit']['tree']['sha']}", recorded(f"tree-{key}"))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github():
    stand_in = StandInGitHub()
    yield stand_in
    stand_in.close()


@pytest.fixture
def api(github):
    return github_api.GitHubAPI(base_url=github.url, token="test-token", timeout_s=5)


def test_the_client_sends_the_token_and_the_api_version(github, api):
    github.commit("squash")
    loop.expand_sha(api, REPO, SHAS["squash"])
    path, headers = github.requests[0]
    assert path == f"/repos/{REPO}/commits/{SHAS['squash']}"
    assert headers["authorization"] == "Bearer test-token"
    assert headers["x-github-api-version"] == github_api.API_VERSION
    assert headers["accept"] == "application/vnd.github+json"


def test_a_short_sha_is_expanded_by_asking_github(github, api):
    github.commit("squash", as_ref=SHAS["squash"][:7])
    assert loop.expand_sha(api, REPO, SHAS["squash"][:7].upper()) == SHAS["squash"]


@pytest.mark.parametrize("bad", ["", "abc", "main", "12345g7", "a" * 41, "HEAD~1"])
def test_what_is_not_a_sha_is_refused_before_any_request(github, api, bad):
    with pytest.raises(InputError, match="not a commit SHA"):
        loop.expand_sha(api, REPO, bad)
    assert github.requests == []


def test_an_unknown_or_ambiguous_short_sha_is_a_clear_input_error(github, api):
    github.answer(
        f"repos/{REPO}/commits/abcdef1", {"message": "No commit found for SHA: abcdef1"}, status=422
    )
    with pytest.raises(InputError, match="no commit abcdef1"):
        loop.expand_sha(api, REPO, "abcdef1")


def test_the_pr_is_the_one_whose_merge_commit_is_the_pushed_sha_after_a_briefly_empty_list(github, api):
    github.answer(
        f"repos/{REPO}/commits/{SHAS['squash']}/pulls",
        recorded("pulls-for-commit-empty"),
        recorded("pulls-for-commit-squash"),
    )
    naps = []
    pr = loop.find_merged_pr(api, REPO, SHAS["squash"], attempts=4, delay_s=2, sleep=naps.append)
    assert pr["number"] == 42 and pr["head"]["sha"] == SHAS["head"]
    assert naps == [2], "one retry after the empty answer"
    # Index 0 of the listed PRs is the open PR #51, which merely contains the commit: [0] would pick it.
    assert recorded("pulls-for-commit-squash")[0]["number"] == 51


def test_a_direct_push_has_no_merged_pr_and_says_so_after_the_retries(github, api):
    github.answer(f"repos/{REPO}/commits/{SHAS['squash']}/pulls", recorded("pulls-for-commit-direct-push"))
    naps = []
    with pytest.raises(loop.NotMergedError, match=r"not the merge commit of any pull request .*#51"):
        loop.find_merged_pr(api, REPO, SHAS["squash"], attempts=3, delay_s=1, sleep=naps.append)
    assert naps == [1, 1]


def test_model_differences_compare_content_not_history(github, api):
    for key in ("head", "squash", "stale-merge"):
        github.commit(key)
    # The squash commit differs from the trained head only in README.md: same model.
    assert loop.model_differences(api, REPO, SHAS["head"], SHAS["squash"]) == []
    assert loop.model_differences(api, REPO, SHAS["head"], SHAS["stale-merge"]) == ["hyperparameters.json"]


def _deploy_stand_in(github, merged: str, tip: str, checks: str = "trained"):
    github.answer(f"repos/{REPO}/commits/{SHAS[merged]}/pulls", recorded(f"pulls-for-commit-{merged}"))
    github.answer(f"repos/{REPO}/commits/{SHAS['head']}/check-runs", recorded(f"check-runs-{checks}"))
    github.answer(f"repos/{REPO}/pulls/42", recorded("pull-42"))
    for key in {"head", merged, tip}:
        github.commit(key)
    github.answer(f"repos/{REPO}/commits/main", recorded(f"commit-{tip}"))


def test_a_merge_whose_tree_matches_the_trained_commit_deploys_that_commits_model(github, api):
    _deploy_stand_in(github, "squash", tip="tip-docs")  # a docs-only merge landed after it: still deploy
    plan = loop.plan_deploy(api, REPO, SHAS["squash"], "main")
    assert (plan.action, plan.trained_commit, plan.pr_number, plan.merged_by) == (
        "deploy",
        SHAS["head"],
        42,
        "maintainer",
    )


def test_a_merge_whose_tree_differs_from_the_trained_commit_is_refused_naming_the_paths(github, api):
    _deploy_stand_in(github, "stale-merge", tip="stale-merge")
    plan = loop.plan_deploy(api, REPO, SHAS["stale-merge"], "main")
    assert plan.action == "refuse" and plan.differences == ["hyperparameters.json"]
    assert "`hyperparameters.json`" in plan.message and ".github/rulesets/main.json" in plan.message


@pytest.mark.parametrize(("checks", "said"), [("failed", "failure"), ("none", "never ran")])
def test_a_pr_merged_without_a_successful_training_is_refused_before_anyone_approves(
    github, api, checks, said
):
    _deploy_stand_in(github, "squash", tip="squash", checks=checks)
    plan = loop.plan_deploy(api, REPO, SHAS["squash"], "main")
    assert plan.action == "refuse"
    assert f"`{loop.TRAIN_CHECK}`: {said}" in plan.message
    path, _ = next((p, h) for p, h in github.requests if "/check-runs" in p)
    assert f"check_name={loop.TRAIN_CHECK.replace(' ', '+').replace(',', '%2C')}" in path
    assert "filter=all" in path, "the default filter (latest) would hide an earlier success"


def test_a_merge_superseded_by_a_newer_model_change_is_skipped_and_says_by_what(github, api):
    _deploy_stand_in(github, "squash", tip="tip-model")
    plan = loop.plan_deploy(api, REPO, SHAS["squash"], "main")
    assert plan.action == "skip"
    assert SHAS["tip-model"] in plan.message and "`src`" in plan.message


def test_superseded_runs_are_the_cancelled_ones_since_the_last_success_before_this_run():
    runs = recorded("workflow-runs")["workflow_runs"]
    assert [r["id"] for r in loop.superseded_runs(runs, current_run_id=906)] == []  # 905 succeeded
    assert [r["id"] for r in loop.superseded_runs(runs, current_run_id=905)] == [904, 903]


def test_the_deploy_plan_command_writes_outputs_and_a_summary(github, tmp_path):
    _deploy_stand_in(github, "squash", tip="squash")
    github.commit("squash", as_ref=SHAS["squash"][:8])
    runs = recorded("workflow-runs")
    runs["workflow_runs"] = [r for r in runs["workflow_runs"] if r["id"] != 905]  # 904 and 903 were cancelled
    github.answer(f"repos/{REPO}/actions/workflows/deploy.yml/runs", runs)
    env = _env(github, tmp_path)
    argv = ["deploy-plan", "--commit", SHAS["squash"][:8], "--workflow", "deploy.yml", "--run-id", "906"]
    assert loop.main(argv, env) == 0
    outputs = _outputs(tmp_path)
    assert outputs["action"] == "deploy" and outputs["commit"] == SHAS["head"]
    assert outputs["merge_commit"] == SHAS["squash"] and outputs["pr_number"] == "42"
    summary = (tmp_path / "summary.md").read_text()
    assert "cancelled while they waited" in summary
    assert recorded("workflow-runs")["workflow_runs"][2]["head_sha"] in summary  # run 904's merge


def test_the_deploy_plan_command_fails_the_step_when_it_refuses(github, tmp_path):
    _deploy_stand_in(github, "stale-merge", tip="stale-merge")
    env = _env(github, tmp_path, GITHUB_SHA=SHAS["stale-merge"])
    assert loop.main(["deploy-plan"], env) == 1
    assert _outputs(tmp_path)["action"] == "refuse"


def test_the_pr_plan_command_trains_a_model_change(github, tmp_path):
    github.commit("base")
    github.commit("head")
    env = _env(github, tmp_path, GITHUB_EVENT_PATH=str(RECORDED / "event-pull-request.json"))
    github.answer(f"repos/{REPO}/commits/{SHAS['base']}/pulls", recorded("pulls-for-commit-base"))
    event = recorded("event-pull-request")
    assert loop.main(["pr-plan"], env) == 0
    outputs = _outputs(tmp_path)
    assert (outputs["train"], outputs["reason"]) == ("true", "model-change")
    # the build reuses the cache of the PR's previous push and of the PR that produced its base commit
    assert outputs["cache_from"].split() == [
        event["before"],
        recorded("pulls-for-commit-base")[0]["head"]["sha"],
    ]
    assert "`hyperparameters.json`, `src`" in (tmp_path / "summary.md").read_text()


def _env(github, tmp_path, **extra) -> dict[str, str]:
    return {
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": "test-token",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **extra,
    }


def _outputs(tmp_path) -> dict[str, str]:
    lines = (tmp_path / "output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


# ------------------------------------------------------------------------------------- pure decisions


def _pr(**overrides):
    pr = recorded("event-pull-request")["pull_request"]
    return {**pr, **overrides}


def test_a_fork_pr_does_not_train_and_its_summary_says_why_and_how_a_maintainer_trains_it():
    head = {**_pr()["head"], "repo": {"full_name": "stranger/scl-delay", "fork": True}}
    decision = loop.decide_training(_pr(head=head), REPO, "main", ["src"])
    assert (decision.train, decision.reason) == (False, "fork")
    for needle in ("no OIDC token", "stranger/scl-delay", "gh pr checkout 42", "git push origin HEAD:"):
        assert needle in decision.summary


def test_a_run_dependabot_triggered_does_not_train_and_says_how_a_maintainer_trains_it():
    decision = loop.decide_training(_pr(), REPO, "main", ["uv.lock"], actor="dependabot[bot]")
    assert (decision.train, decision.reason) == (False, "dependabot")
    assert (
        "as if they came from a fork" in decision.summary and "git commit --allow-empty" in decision.summary
    )
    # the maintainer's push is a run of theirs: it trains
    assert loop.decide_training(_pr(), REPO, "main", ["uv.lock"], actor="octocat").train


def test_a_dependabot_run_that_changes_the_model_fails_the_plan(github, tmp_path):
    github.commit("base")
    github.commit("head")
    event = {**recorded("event-pull-request"), "sender": {"login": "dependabot[bot]", "type": "Bot"}}
    (tmp_path / "event.json").write_text(json.dumps(event))
    env = _env(github, tmp_path, GITHUB_EVENT_PATH=str(tmp_path / "event.json"))
    assert loop.main(["pr-plan"], env) == 1
    assert _outputs(tmp_path)["reason"] == "dependabot"


@pytest.mark.parametrize(
    ("overrides", "differences", "train", "reason"),
    [
        ({}, ["src"], True, "model-change"),
        ({}, [], False, "no-model-change"),
        ({"draft": True}, ["src"], False, "draft"),
        ({"draft": True, "labels": [{"name": "train"}]}, ["src"], True, "model-change"),
        ({"base": {"ref": "release", "sha": "0" * 40}}, ["src"], False, "not-main"),
        (
            {"base": {"ref": "release", "sha": "0" * 40}, "labels": [{"name": "train"}]},
            ["src"],
            True,
            "model-change",
        ),
        ({"labels": [{"name": "documentation"}]}, [], False, "no-model-change"),
    ],
)
def test_which_prs_train(overrides, differences, train, reason):
    decision = loop.decide_training(_pr(**overrides), REPO, "main", differences)
    assert (decision.train, decision.reason) == (train, reason)
    if reason in ("draft", "not-main"):
        assert "label `train`" in decision.summary


def test_the_plan_steps_need_only_the_standard_library():
    """pr-train's and deploy's plan jobs run it from the checkout (PYTHONPATH=src), without `make setup`."""
    import subprocess
    import sys

    code = (
        "import sys, scl_delay.github_loop; "
        "print(sorted(m for m in ('boto3', 'botocore', 'numpy', 'pandas', 'yaml') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_push_without_a_pr_stops_the_deploy_plan_and_says_why_in_the_summary(github, tmp_path, monkeypatch):
    github.commit("squash")
    github.answer(f"repos/{REPO}/commits/{SHAS['squash']}/pulls", recorded("pulls-for-commit-direct-push"))
    monkeypatch.setattr(loop.time, "sleep", lambda s: None)
    env = _env(github, tmp_path, GITHUB_SHA=SHAS["squash"])
    assert loop.main(["deploy-plan"], env) == 2
    assert "not the merge commit of any pull request" in (tmp_path / "summary.md").read_text()
