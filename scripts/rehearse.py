#!/usr/bin/env python3
"""Rehearse the PR -> merge loop locally, no AWS account, and watch the model registry's versions move:

    PR 1  training_job.py (as the PR role) really runs `train` -> registered v1 PendingManualApproval
    merge deploy.py --smoke-test (as the deploy role) -> v1 Approved, endpoint created, smoke test through the
          gateway URL; then a prediction, a bad record and a call without the API key through that URL
    PR 2  other hyperparameters, its report against live v1 -> v2 registered
    merge v2 Approved, blue/green update; an answer through the gateway now carries v2's model_version
    PR 3  opened while PR 2 merges; its container crashes on every request (forced) -> merge: v3 Approved
          and deployed, the smoke test fails, v3 Rejected, v2 redeployed and live again (exit 4)
    the registry's versions, then deploy.py --teardown (the registry keeps its history)

    .venv/bin/python scripts/rehearse.py [--keep]
    # `train` inside the image (make image)
    .venv/bin/python scripts/rehearse.py --image localhost/scl-delay:dev

The account is infra/scl-delay.yaml applied to a moto server that enforces IAM (local_aws.stack,
local_aws.iam_enforcement: what moto's evaluation leaves out is listed there); each step runs with the
credentials of its role, so a call the template does not allow fails here. Stand-ins (src/local_aws): the
training backend runs `train` as the job's execution role; moto's ECR holds each commit's image as
`docker push` leaves it; the gateway stand-in serves the REST API deploy.py configured (API key, mapping
templates) and forwards to the runtime stand-in, which routes the endpoint to a real `serve` of the version
the endpoint serves now.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import boto3

from local_aws import iam_enforcement, stack
from local_aws.gateway_standin import GatewayStandin
from local_aws.moto_server import start_moto_server
from local_aws.process import free_port
from local_aws.rehearsal import seed_dataset, start_serve
from local_aws.runtime_standin import RuntimeStandin
from local_aws.training_backend import TRAIN_COMMAND_ENV
from scl_delay.aws import registry
from scl_delay.aws.cli import deploy_main, training_job_main
from scl_delay.aws.smoke import EXECUTE_API_ENDPOINT_ENV, SAMPLE_RECORD

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT, REGION = "123456789012", "us-east-1"
ENDPOINT = "scl-delay"
ROWS = 2500  # synthetic flights: enough for PR 2 to beat PR 1's deliberately small model, and quick to fit
# (PR, trained head commit, merge commit, author, hyperparameters)
PRS = (
    (1, "1" * 40, "a" * 40, "alice", ["num_round=5", "max_depth=1", "early_stopping_rounds=0"]),
    (2, "2" * 40, "b" * 40, "bob", ["num_round=80"]),
    (3, "3" * 40, "c" * 40, "carol", ["num_round=80"]),
)


class LiveRoutes(dict):
    """The runtime stand-in's routes, resolved per call: the endpoint goes to a real `serve` of the version it
    serves now (endpoint -> config tag -> package -> the model's artifact), started on first use. A version in
    ``crashing`` goes to a port nothing listens on: a container that crashed (SageMaker: 424 ModelError)."""

    def __init__(self, sm, s3, work: Path):
        super().__init__()
        self.sm, self.s3, self.work = sm, s3, work
        self.serves: dict[int, object] = {}
        self.crashing: set[int] = set()
        self.dead = f"http://127.0.0.1:{free_port()}"
        self.lock = threading.Lock()

    def get(self, endpoint, default=None):
        version, desc = registry.live_version(self.sm, endpoint)
        if version is None:
            return default
        if version.number in self.crashing:
            return self.dead
        with self.lock:
            if version.number not in self.serves:
                model = self.sm.describe_model(ModelName=desc["EndpointConfigName"])
                artifact = model["PrimaryContainer"]["ModelDataUrl"]
                self.serves[version.number] = start_serve(
                    self.s3, artifact, self.work / f"serve-v{version.number}"
                )
        return self.serves[version.number].url

    def stop(self) -> None:
        for serve in self.serves.values():
            serve.stop()


@contextmanager
def as_role(env: dict[str, str]):
    """Run a step with a role's credentials, as configure-aws-credentials exports them in a workflow."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def push_image(ecr, repository: str, commit: str) -> None:
    """What `docker push` of the commit's image leaves in ECR, as moto records it."""
    import hashlib

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": f"sha256:{'0' * 64}",
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1,
                "digest": f"sha256:{hashlib.sha256(commit.encode()).hexdigest()}",
            }
        ],
    }
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=commit)


def pr_args(account: dict, work: Path, number: int, commit: str, hps: list[str]) -> list[str]:
    out = work / f"pr-{number}"
    return [
        *("--image-uri", f"{account['EcrRepositoryUri']}:{commit}"),
        *("--training-role-arn", account["TrainingExecutionRoleArn"]),
        *("--data", account["TrainingDataS3Uri"], "--output-s3", account["TrainingS3Prefix"]),
        *("--hyperparameters", str(ROOT / "hyperparameters.json"), "--commit", commit),
        *("--pr-number", str(number), "--repo", "acme/scl-delay", "--poll-seconds", "0.5"),
        *("--result", str(out / "training_result.json"), "--report", str(out / "report.md")),
        *[part for hp in hps for part in ("--hp", hp)],
    ]


def open_pr(account: dict, work: Path, number: int, commit: str, hps: list[str]) -> bool:
    """What pr-train.yml does, as the PR role: training_job.py for the PR head commit's image; the comment."""
    print(f"\n== PR {number} (commit {commit[:8]}), as the PR role: training_job.py {' '.join(hps)}")
    with as_role(account["pr_env"]):
        code = training_job_main(pr_args(account, work, number, commit, hps))
    return code == 0 and show_comment(work, number)


def open_pr_in_background(account: dict, work: Path, number: int, commit: str, hps: list[str]):
    """The same for a PR opened while another merges: training_job.py in its own process (its own
    credentials: the deploy step holds the deploy role's meanwhile), its output kept for later."""
    print(
        f"\n== PR {number} (commit {commit[:8]}) is opened meanwhile: training_job.py {' '.join(hps)} starts"
    )
    (work / f"pr-{number}").mkdir(parents=True, exist_ok=True)
    log = (work / f"pr-{number}" / "training_job.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "training_job.py"), *pr_args(account, work, number, commit, hps)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **account["pr_env"]},
        cwd=ROOT,
    )
    return process, log


def finish_pr(work: Path, number: int, background) -> bool:
    process, log = background
    code = process.wait(timeout=300)
    log.close()
    lines = (work / f"pr-{number}" / "training_job.log").read_text().splitlines()
    print(f"\n== PR {number}: training_job.py ended (exit {code}):")
    print("\n".join(line for line in lines if not line.startswith("  |")))
    return code == 0 and show_comment(work, number)


def show_comment(work: Path, number: int) -> bool:
    out = work / f"pr-{number}"
    report = (out / "report.md").read_text()
    print(f"== PR {number}: the PR comment ({out / 'report.md'}), up to its hyperparameters:\n")
    print(report.split("### Hyperparameters changed")[0].rstrip())
    return True


def deploy_args(account: dict, *extra: str) -> list[str]:
    return [
        *("--endpoint-name", ENDPOINT, "--deploy-s3", account["DeployS3Prefix"]),
        *("--serving-role-arn", account["ServingExecutionRoleArn"]),
        *("--apigw-role-arn", account["ApiGatewayInvokeRoleArn"]),
        *("--wait-delay-seconds", "1", *extra),
    ]


def merge(
    account: dict, work: Path, number: int, commit: str, merge_commit: str, author: str
) -> tuple[int, dict]:
    """What deploy.yml does on the merge, as the deploy role: one deploy.py with its smoke test and
    rollback."""
    out = work / f"merge-{number}.json"
    print(
        f"\n== merge PR {number} (by {author}), as the deploy role: "
        f"deploy.py --commit {commit[:8]} --smoke-test"
    )
    with as_role(account["deploy_env"]):
        code = deploy_main(
            deploy_args(
                account,
                *("--commit", commit, "--merge-commit", merge_commit, "--merged-by", author),
                *("--smoke-test", "--smoke-attempts", "1", "--out", str(out)),
            )
        )
    outcome = json.loads(out.read_text())
    print(
        f"== merge PR {number}: exit {code}; changed={outcome.get('changed')}, "
        f"v{outcome.get('previous_version')} -> v{outcome.get('version')}"
        + (f"; rolled back to v{outcome['rollback']['version']}" if outcome.get("rolled_back") else "")
    )
    return code, outcome


def call_gateway(url: str, body: dict, key: str | None) -> None:
    """One call through the gateway URL (the stand-in prints it as ``gateway POST <url> -> <status> ...``)."""
    headers = {"Content-Type": "application/json", **({"x-api-key": key} if key else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()
    except urllib.error.HTTPError as e:
        e.read()


def try_the_gateway(gw_standin: GatewayStandin, outcome: dict, key: str) -> None:
    url = smoke_url(gw_standin, outcome)
    call_gateway(url, {"instances": [SAMPLE_RECORD]}, key)
    call_gateway(url, {**SAMPLE_RECORD, "TIPOVUELO": "X"}, key)
    call_gateway(url, {"instances": [SAMPLE_RECORD]}, None)


def smoke_url(gw_standin: GatewayStandin, outcome: dict) -> str:
    return gw_standin.invoke_url(outcome["api_id"], outcome["stage"], "predict")


def show_versions(account: dict, title: str) -> None:
    """deploy.py --list, as the deploy role."""
    print(f"\n== {title}: deploy.py --list")
    with as_role(account["deploy_env"]):
        deploy_main(["--endpoint-name", ENDPOINT, "--list"])


def set_up_account(moto, work: Path) -> dict:
    """The one-time account setup (infra/scl-delay.yaml) on moto, IAM enforced; data and images in place."""
    admin = iam_enforcement.enforce(moto.url, REGION)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(admin)
    session = boto3.session.Session(region_name=REGION)
    rendered = stack.render(
        stack.TEMPLATE, {"GitHubOwner": "acme", "GitHubRepo": "scl-delay"}, ACCOUNT, REGION
    )
    account = dict(stack.apply(rendered, session))
    data = account["TrainingDataS3Uri"].removeprefix("s3://").split("/", 1)
    seed_dataset(session.client("s3"), data[0], rows=ROWS, key=f"{data[1].rstrip('/')}/flights.csv")
    ecr = session.client("ecr")
    repository = account["EcrRepositoryUri"].split("/", 1)[1]
    for _, commit, *_ in PRS:
        push_image(ecr, repository, commit)  # what CI's docker push leaves in ECR
    account["pr_env"] = iam_enforcement.role_credentials(session, account["PrTrainingRoleArn"], "pr-train")
    account["deploy_env"] = iam_enforcement.role_credentials(session, account["DeployRoleArn"], "deploy")
    account["session"] = session
    return account


def elapsed() -> str:
    """Wall time since the script started, with the CPU it and its reaped children (moto and the `train` runs
    it started, the `serve`s) used, and the machine's load: on a shared machine the wall time says as much
    about the neighbours as about the rehearsal."""
    cpu = sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )
    return f"{process_age_s():.1f} s wall, {cpu:.1f} s CPU, load average {os.getloadavg()[0]:.1f}"


def process_age_s() -> float:
    """Seconds since this process started, its imports included, from /proc; 0 where there is none."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument(
        "--image", help="run `train` inside this local image (docker or podman) instead of a process"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scl-rehearsal-"))
    in_image = (
        {
            TRAIN_COMMAND_ENV: f"{ROOT / 'scripts' / 'container-engine.sh'} run --rm --no-healthcheck "
            f"--network none -v {{opt_ml}}:/opt/ml {args.image} train"
        }
        if args.image
        else {}
    )
    moto = start_moto_server(work / "jobs", work / "moto.log", extra_env=in_image)
    routes = runtime = gw_standin = None
    try:
        os.environ.update(moto.client_env(REGION))
        account = set_up_account(moto, work)
        session = account["session"]
        routes = LiveRoutes(session.client("sagemaker"), session.client("s3"), work)
        runtime = RuntimeStandin(routes=routes, region=REGION)
        runtime.routes = routes  # resolved per call (RuntimeStandin copies what it is given)
        runtime.start()
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime.url
        gw_standin = GatewayStandin(session, runtime.url, log=print).start()
        os.environ[EXECUTE_API_ENDPOINT_ENV] = gw_standin.url
        print(
            f"== moto at {moto.url} (IAM enforced, infra/scl-delay.yaml applied); gateway stand-in at "
            f"{gw_standin.url}; work folder {work}"
        )

        apigateway = session.client("apigateway")
        (n1, c1, m1, a1, h1), (n2, c2, m2, a2, h2), (n3, c3, m3, a3, h3) = PRS
        if not open_pr(account, work, n1, c1, h1):
            return 1
        show_versions(account, "registry after PR 1's training")
        code, outcome = merge(account, work, n1, c1, m1, a1)
        if code != 0:
            return 1
        key = apigateway.get_api_key(apiKey=outcome["api_key_id"], includeValue=True)["value"]
        print("== through the gateway URL after PR 1's merge (v1 live): a flight, a bad record, no API key")
        try_the_gateway(gw_standin, outcome, key)

        if not open_pr(account, work, n2, c2, h2):
            return 1
        show_versions(account, "registry after PR 2's training")
        pr3 = open_pr_in_background(account, work, n3, c3, h3)
        code, outcome = merge(account, work, n2, c2, m2, a2)
        if code != 0:
            return 1
        print(
            "== through the gateway URL after PR 2's merge: "
            f"the answer carries v{outcome['version']}'s model_version"
        )
        call_gateway(smoke_url(gw_standin, outcome), {"instances": [SAMPLE_RECORD]}, key)

        if not finish_pr(work, n3, pr3):
            return 1
        show_versions(account, "registry after PR 3's training")
        v3 = json.loads((work / "pr-3" / "training_result.json").read_text())["model_package_version"]
        routes.crashing.add(v3)
        print(f"\n== PR 3's container (v{v3}) will crash on every request (forced failure)")
        code, outcome = merge(account, work, n3, c3, m3, a3)
        if code != 4:
            print(f"== unexpected exit {code} (expected 4: smoke test failed, previous version redeployed)")
            return 1
        live, _ = registry.live_version(session.client("sagemaker"), ENDPOINT)
        print(f"\n== after the forced failure, live: {live.label() if live else 'nothing'}")
        show_versions(account, "registry at the end")
        if args.keep:
            print(f"== running: AWS_ENDPOINT_URL={moto.url}; Ctrl-C to stop")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        print("\n== deploy.py --teardown, as the deploy role")
        with as_role(account["deploy_env"]):
            return deploy_main(["--endpoint-name", ENDPOINT, "--teardown", "--wait-delay-seconds", "1"])
    finally:
        for part in (gw_standin, runtime, routes):
            if part is not None:
                part.stop()
        moto.stop()
        print(f"== rehearsal done in {elapsed()}")  # after the stops: their CPU is counted once reaped


if __name__ == "__main__":
    sys.exit(main())
