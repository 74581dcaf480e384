"""The README's shell commands work as written: every command in its ```sh blocks is either run here
(the cheap ones) or names where it is covered or why it cannot run here (AWS). A new command that is in
neither list fails the test, so the README cannot grow a command nobody ran.

What runs: `make help` (and it lists every `make` target the README mentions), the `--help` of the two
AWS scripts, the local `train.py` then `container/serve` pair, and every `curl` against a live
`container/serve` (localhost:8080 becomes the test server's port). The answers' shape (keys and value
types) must match the example answer the README prints after the command. More lenient than the real
thing: `$INVOKE_URL` (API Gateway) is stood in for by the container's own /invocations, which the
gateway passes through; `train.py` trains on the suite's 4,000-row synthetic CSV, not the real dataset
the README names (minutes on a busy 2-core machine).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from processes import ROOT, venv_env

from local_aws.process import LocalProcess

README = ROOT / "README.md"
FENCE = re.compile(r"```(sh|json)\n(.*?)```", re.DOTALL)
# command pattern -> why it is not run here (the test or place that covers it)
NOT_RUN_HERE = {
    r"make test$": "this suite is it",
    r"make demo$": "scripts/demo.sh; its steps are the commands run here (train, serve, curl)",
    r"make image$": "tests/container/test_image.py builds the image",
    r"make image-demo$": "serves until Ctrl-C; its build, train and serve are tests/container/test_image.py",
    r"make rehearse$": "tests/container/test_image.py runs scripts/rehearse.py (with the image)",
    r"docker (build|run) ": "no Docker daemon in CI; the podman path (container-engine.sh): tests/container",
    r"SCL_IMAGE=\S+ scripts/container-engine.sh build$": "tests/container/test_image.py (the image fixture)",
    r"scripts/container-engine.sh run ": "tests/container/test_image.py (train and serve through the engine)",
    r"mkdir -p opt_ml/": "part of the docker/podman steps above",
    r'cp "\$\{SCL_DATASET': "part of the docker/podman steps above",
    r"echo '\{\"feature_set\"": "part of the docker/podman steps above",
    r"gh variable set [A-Z0-9_]+ ": "GitHub setup (a repository and gh auth): the names are the variables "
    "the workflows read "
    "(tests/unit/test_workflows.py::test_the_readme_setup_sets_every_variable_the_workflows_read)",
    r'gh api --method POST "repos/\{owner\}/\{repo\}/rulesets" ': "GitHub setup: applies "
    ".github/rulesets/main.json, checked against the workflows' check names by tests/unit/test_workflows.py",
    r"read OWNER_ID REPO_ID < <\(gh api repos/OWNER/REPO ": "GitHub setup (gh auth): the ids the OIDC trust "
    "takes; the trust's claim forms are tested in tests/aws/test_infra.py",
    r"aws cloudformation deploy --stack-name scl-delay --template-file infra/scl-delay\.yaml ": "an AWS "
    "account; the template is cfn-linted and applied to moto by tests/aws (local_aws.stack)",
}
RUN_HERE = (
    r"make help$",
    r"\.venv/bin/python (training_job|deploy)\.py --help$",
    r"\.venv/bin/python train\.py ",
    r"PATH=\.venv/bin:\$PATH SM_MODEL_DIR=model container/serve$",
    r"curl ",
)


def readme_blocks() -> list[tuple[list[str], list[str]]]:
    """(commands of a ```sh block, answer lines of the ```json block right after it, or [])."""
    fences = FENCE.findall(README.read_text())
    blocks = []
    for i, (lang, body) in enumerate(fences):
        if lang != "sh":
            continue
        joined = re.sub(r"\\\n\s*", "", body)
        commands = [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
        commands = [re.sub(r"\s+#\s.*$", "", c) for c in commands]  # trailing comments
        answers = (
            fences[i + 1][1].strip().splitlines()
            if i + 1 < len(fences) and fences[i + 1][0] == "json"
            else []
        )
        blocks.append((commands, answers))
    return blocks


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return (
        "bool"
        if isinstance(value, bool)
        else "number"
        if isinstance(value, int | float)
        else type(value).__name__
    )


def bash(command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=venv_env(**env), capture_output=True, text=True, timeout=300
    )


def test_every_readme_command_is_run_here_or_says_where_it_is_covered():
    unknown = [
        c
        for commands, _ in readme_blocks()
        for c in commands
        if not any(re.match(p, c) for p in (*NOT_RUN_HERE, *RUN_HERE))
    ]
    assert not unknown, f"README commands neither run nor accounted for in {__file__}: {unknown}"


def test_make_help_lists_every_target_the_readme_mentions():
    mentioned = set(re.findall(r"\bmake ([a-z][a-z-]*)", README.read_text())) - {"sure"}
    listed = bash("make help").stdout
    missing = [t for t in sorted(mentioned) if f"make {t} " not in listed]
    assert not missing, f"`make help` does not list {missing}:\n{listed}"


@pytest.mark.parametrize("script", ["training_job.py", "deploy.py"])
def test_the_aws_scripts_help_works_as_the_readme_writes_it(script):
    command = f".venv/bin/python {script} --help"
    assert any(command in commands for commands, _ in readme_blocks())
    result = bash(command)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}"), result.stderr[-2000:]


@pytest.fixture(scope="module")
def readme_server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("readme") / "serve.log"
    serve = LocalProcess.start(
        ["bash", "-c", "exec container/serve"], venv_env(SM_MODEL_DIR=str(model_dir)), log
    )
    try:
        serve.wait_ping(deadline_s=60)
        yield serve
    finally:
        serve.stop()


def test_every_curl_answers_in_the_shape_the_readme_shows(readme_server):
    checked = 0
    for commands, answers in readme_blocks():
        curls = [c for c in commands if c.startswith("curl ")]
        for i, command in enumerate(curls):
            local = command.replace("localhost:8080", f"127.0.0.1:{readme_server.port}")
            result = bash(local, INVOKE_URL=f"{readme_server.url}/invocations", API_KEY="not-checked-here")
            assert result.returncode == 0 and result.stdout, f"{command}\n{result.stderr}"
            answer = json.loads(result.stdout)
            assert "error" not in answer, f"{command}: {answer}"
            if i < len(answers):
                assert shape(answer) == shape(json.loads(answers[i])), (
                    f"{command}:\n{answer}\nREADME: {answers[i]}"
                )
                checked += 1
    assert checked >= 4, "the README's example answers went missing"


@pytest.mark.slow
def test_training_and_serving_without_a_container_work_as_written(tmp_path, synthetic_csv):
    (train,) = [
        c for commands, _ in readme_blocks() for c in commands if c.startswith(".venv/bin/python train.py")
    ]
    (serve,) = [c for commands, _ in readme_blocks() for c in commands if c.endswith("container/serve")]
    data = re.search(r"--data (\S+)", train).group(1)
    model = tmp_path / "model"
    result = bash(train.replace(f"--data {data}", f"--data {synthetic_csv}").replace("model/", f"{model}/"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (model / "booster.ubj").is_file() and (
        tmp_path / "output" / "data" / "data_quality.json"
    ).is_file()
    command = serve.replace("SM_MODEL_DIR=model", f"SM_MODEL_DIR={model}")
    server = LocalProcess.start(
        ["bash", "-c", f"exec env {command}"], venv_env(), Path(tmp_path / "serve.log")
    )
    try:
        assert server.wait_ping(deadline_s=60).json()["status"] == "ok"
    finally:
        assert server.stop() == 0, server.log_tail()
