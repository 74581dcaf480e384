#!/usr/bin/env python3
"""Rehearse the PR -> merge loop locally, no AWS account, and watch the model registry's versions move:

    PR 1  training_job.py really runs `train` -> registered v1 PendingManualApproval
    merge deploy.py --smoke-test -> v1 Approved, endpoint created, smoke test through the gateway URL
    PR 2  other hyperparameters, its report against live v1 -> v2 registered
    merge v2 Approved, blue/green update
    PR 3  its container crashes on every request (forced) -> merge: v3 Approved and deployed, the smoke test
          fails, v3 Rejected, v2 redeployed and live again (exit 4)
    the registry's versions, then deploy.py --teardown (the registry keeps its history)

    .venv/bin/python scripts/rehearse.py [--keep]
    .venv/bin/python scripts/rehearse.py --image localhost/scl-delay:dev   # `train` inside the image (make image)

Stand-ins (src/local_aws): moto server with UpdateEndpoint and the local training backend; moto's ECR holds
each commit's image as `docker push` would leave it; a bare gateway forwarder serves the invoke URL to a real
`serve` of the version the endpoint serves (more lenient than API Gateway: no key check, no mapping
templates).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

from local_aws.moto_server import start_moto_server
from local_aws.rehearsal import seed_dataset, start_serve
from local_aws.training_backend import TRAIN_COMMAND_ENV
from scl_delay.aws import registry
from scl_delay.aws.cli import deploy_main, training_job_main
from scl_delay.aws.deploy import format_versions, list_versions
from scl_delay.aws.smoke import EXECUTE_API_ENDPOINT_ENV

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT, REGION = "123456789012", "us-east-1"
TRAINING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-sagemaker-training"
SERVING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-sagemaker-serving"
APIGW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/scl-delay-apigateway-invoke"
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay"
BUCKET, ENDPOINT = "scl-delay-rehearsal", "scl-delay"
# (PR, trained head commit, merge commit, author, hyperparameters)
PRS = (
    (1, "1" * 40, "a" * 40, "alice", ["num_round=40", "max_depth=2"]),
    (2, "2" * 40, "b" * 40, "bob", ["num_round=120"]),
    (3, "3" * 40, "c" * 40, "carol", ["num_round=120"]),
)


class Gateway:
    """POST {url}/{api}/{stage}/predict -> the `serve` of the version the endpoint serves now (read from
    moto: endpoint -> config tag -> package -> model artifact), started on first use. A version listed in
    ``crashing`` answers 502, as the gateway maps a container that crashes."""

    def __init__(self, sm, s3, work: Path):
        self.sm, self.s3, self.work = sm, s3, work
        self.serves: dict[int, object] = {}
        self.crashing: set[int] = set()
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = gateway.forward(body, self.headers.get("Content-Type", "application/json"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def forward(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        version, endpoint = registry.live_version(self.sm, ENDPOINT)
        if version is None:
            return 500, b'{"error": {"code": "gateway_error", "message": "no endpoint"}}'
        if version.number in self.crashing:
            status, answer = (
                502,
                b'{"error": {"code": "model_unavailable", "message": "the model endpoint failed"}}',
            )
        else:
            status, answer = self._invoke(version.number, endpoint["EndpointConfigName"], body, content_type)
        print(f"  gateway POST /{ENDPOINT}/predict (v{version.number}) -> {status} {answer[:90].decode()}")
        return status, answer

    def _invoke(self, number: int, config: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        with self.lock:
            if number not in self.serves:
                artifact = self.sm.describe_model(ModelName=config)["PrimaryContainer"]["ModelDataUrl"]
                self.serves[number] = start_serve(self.s3, artifact, self.work / f"serve-v{number}")
        request = urllib.request.Request(
            f"{self.serves[number].url}/invocations", data=body, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for serve in self.serves.values():
            serve.stop()


def push_image(ecr, commit: str) -> None:
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
    ecr.put_image(repositoryName="scl-delay", imageManifest=json.dumps(manifest), imageTag=commit)


def open_pr(work: Path, data: str, number: int, commit: str, hps: list[str]) -> dict | None:
    """What pr-train.yml does: training_job.py for the PR head commit's image; the PR comment."""
    out = work / f"pr-{number}"
    args = [
        *("--image-uri", f"{REPOSITORY}:{commit}", "--training-role-arn", TRAINING_ROLE),
        *("--data", data, "--output-s3", f"s3://{BUCKET}/artifacts"),
        *("--hyperparameters", str(ROOT / "hyperparameters.json"), "--commit", commit),
        *("--pr-number", str(number), "--repo", "acme/scl-delay", "--poll-seconds", "0.5"),
        *("--result", str(out / "training_result.json"), "--report", str(out / "report.md")),
        *[part for hp in hps for part in ("--hp", hp)],
    ]
    print(f"\n== PR {number} (commit {commit[:8]}): training_job.py {' '.join(hps)}")
    if training_job_main(args):
        return None
    report = (out / "report.md").read_text()
    print(f"== PR {number}: the PR comment ({out / 'report.md'}), up to its hyperparameters:\n")
    print(report.split("### Hyperparameters changed")[0].rstrip())
    return json.loads((out / "training_result.json").read_text())


def merge(work: Path, number: int, commit: str, merge_commit: str, author: str) -> tuple[int, dict]:
    """What deploy.yml does on the merge: one deploy.py with its smoke test and rollback."""
    out = work / f"merge-{number}.json"
    print(f"\n== merge PR {number} (by {author}): deploy.py --commit {commit[:8]} --smoke-test")
    code = deploy_main(
        [
            *("--commit", commit, "--merge-commit", merge_commit, "--merged-by", author),
            *("--endpoint-name", ENDPOINT, "--deploy-s3", f"s3://{BUCKET}/deployed"),
            *("--serving-role-arn", SERVING_ROLE, "--apigw-role-arn", APIGW_ROLE),
            *("--smoke-test", "--smoke-attempts", "1", "--wait-delay-seconds", "1", "--out", str(out)),
        ]
    )
    outcome = json.loads(out.read_text())
    print(
        f"== merge PR {number}: exit {code}; changed={outcome.get('changed')}, "
        f"v{outcome.get('previous_version')} -> v{outcome.get('version')}"
        + (f"; rolled back to v{outcome['rollback']['version']}" if outcome.get("rolled_back") else "")
    )
    return code, outcome


def show_versions(sm, title: str) -> None:
    from scl_delay.aws.clients import AwsClients
    from scl_delay.aws.deploy import DeploySpec

    rows = list_versions(AwsClients(REGION), DeploySpec(region=REGION, endpoint_name=ENDPOINT))
    print(f"\n== {title}\n{format_versions(rows, ENDPOINT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument(
        "--image", help="run `train` inside this local image (docker or podman) instead of a process"
    )
    args = parser.parse_args()
    started = time.monotonic()
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
    gateway = None
    try:
        os.environ.update(moto.client_env(REGION))
        s3, sm, ecr = (boto3.client(s, region_name=REGION) for s in ("s3", "sagemaker", "ecr"))
        data = seed_dataset(s3, BUCKET)
        ecr.create_repository(repositoryName="scl-delay")
        for _, commit, *_ in PRS:
            push_image(ecr, commit)
        gateway = Gateway(sm, s3, work)
        os.environ[EXECUTE_API_ENDPOINT_ENV] = gateway.url
        print(f"== moto at {moto.url}; data at {data}; gateway stand-in at {gateway.url}; work folder {work}")

        expected = {1: 0, 2: 0, 3: 4}
        for number, commit, merge_commit, author, hps in PRS:
            if open_pr(work, data, number, commit, hps) is None:
                return 1
            show_versions(sm, f"registry after PR {number}'s training")
            if number == 3:
                gateway.crashing.add(3)
                print("== PR 3's container will crash on every request (forced failure)")
            code, _ = merge(work, number, commit, merge_commit, author)
            if code != expected[number]:
                print(f"== unexpected exit {code} (expected {expected[number]})")
                return 1
        live, _ = registry.live_version(sm, ENDPOINT)
        print(f"\n== after the forced failure, live: {live.label() if live else 'nothing'}")
        show_versions(sm, "registry at the end")
        if args.keep:
            print(f"== running: AWS_ENDPOINT_URL={moto.url}; Ctrl-C to stop")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        print("\n== deploy.py --teardown")
        code = deploy_main(["--endpoint-name", ENDPOINT, "--teardown", "--wait-delay-seconds", "1"])
        print(f"== rehearsal done in {time.monotonic() - started:.1f} s")
        return code
    finally:
        if gateway is not None:
            gateway.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
