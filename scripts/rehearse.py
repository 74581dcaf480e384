#!/usr/bin/env python3
"""Rehearse the whole pipeline locally, no AWS account: moto server (with the local stand-ins) ->
synthetic data in its S3 -> PR 1: training_job.py (really runs `train`) and its report -> merge: deploy.py
(endpoint, scaling, API Gateway) -> serve the model -> InvokeEndpoint through the runtime stand-in -> PR 2
(other hyperparameters), its report against the live model -> merge: blue/green update, or the gate keeps
the live model -> deploy.py --teardown.

    .venv/bin/python scripts/rehearse.py [--keep]     # --keep: leave everything running until Ctrl-C
    .venv/bin/python scripts/rehearse.py --image localhost/scl-delay:dev   # `train` inside the image (make image)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import boto3

from local_aws.moto_server import start_moto_server
from local_aws.rehearsal import SAMPLE_RECORD, seed_dataset, start_serve
from local_aws.runtime_standin import RuntimeStandin
from local_aws.training_backend import TRAIN_COMMAND_ENV
from scl_delay.aws.cli import deploy_main, training_job_main

ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/scl-delay-sagemaker-execution"
APIGW_ROLE = "arn:aws:iam::123456789012:role/scl-delay-apigateway-invoke"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/scl-delay:rehearsal"
BUCKET, ENDPOINT = "scl-delay-rehearsal", "scl-delay"


def open_pr(work: Path, data: str, number: int, hps: list[str]) -> dict | None:
    """What pr-train.yml does for PR ``number``: training_job.py with the repo's hyperparameters and ``hps``."""
    out = work / f"pr-{number}"
    args = [
        "--image-uri",
        IMAGE,
        "--role-arn",
        ROLE,
        "--data",
        data,
        "--output-s3",
        f"s3://{BUCKET}/artifacts",
        "--hyperparameters",
        str(ROOT / "hyperparameters.json"),
        "--hp",
        "num_round=200",
        "--pr-number",
        str(number),
        "--poll-seconds",
        "1",
        "--result",
        str(out / "training_result.json"),
        "--report",
        str(out / "report.md"),
        *[part for hp in hps for part in ("--hp", hp)],
    ]
    print(f"\n== PR {number}: training_job.py {' '.join(hps)}")
    if training_job_main(args):
        return None
    print(f"== PR {number}: the PR comment ({out / 'report.md'}):\n")
    print((out / "report.md").read_text())
    return json.loads((out / "training_result.json").read_text())


def merge(work: Path, job: dict) -> int:
    """What deploy.yml does on merge: deploy.py for the PR's training job (0 deployed, 3 refused by the gate)."""
    print(f"\n== merge: deploy.py --training-job {job['job_name']}")
    return deploy_main(
        [
            "--training-job",
            job["job_name"],
            "--endpoint-name",
            ENDPOINT,
            "--state-s3",
            f"s3://{BUCKET}/artifacts/state",
            "--role-arn",
            ROLE,
            "--apigw-role-arn",
            APIGW_ROLE,
            "--out",
            str(work / f"{job['job_name']}-deploy.json"),
            "--wait-delay-seconds",
            "1",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument(
        "--image",
        help="run the training job's `train` inside this local image (docker or podman, "
        "through scripts/container-engine.sh) instead of as a process",
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
    standin = serve = None
    try:
        os.environ.update(moto.client_env())
        s3 = boto3.client("s3")
        data = seed_dataset(s3, BUCKET)
        print(f"== moto at {moto.url}; data at {data}; work folder {work}")
        first = open_pr(work, data, 1, [])
        if first is None or merge(work, first) != 0:
            return 1
        serve = start_serve(s3, first["model_artifact"], work / "serve")
        standin = RuntimeStandin(routes={ENDPOINT: serve.url}).start()
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = standin.url
        runtime = boto3.client("sagemaker-runtime")
        answer = runtime.invoke_endpoint(
            EndpointName=ENDPOINT,
            ContentType="application/json",
            Body=json.dumps({"instances": [SAMPLE_RECORD]}),
        )
        print(f"== InvokeEndpoint {ENDPOINT}: {answer['Body'].read().decode()}")
        try:
            runtime.invoke_endpoint(
                EndpointName=ENDPOINT,
                ContentType="application/json",
                Body=json.dumps({**SAMPLE_RECORD, "TIPOVUELO": "X"}),
            )
        except runtime.exceptions.ModelError as e:
            print(
                f"== a bad record: ModelError {e.response['OriginalStatusCode']}: {e.response['OriginalMessage']}"
            )
        second = open_pr(work, data, 2, ["max_depth=2", "eta=0.1"])  # compared with the live model of PR 1
        if second is None:
            return 1
        code = merge(work, second)
        if code not in (0, 3):
            return 1
        print(
            "== PR 2 merged: "
            + (
                "its model is live (blue/green update)"
                if code == 0
                else "the gate kept PR 1's model live (PR 2's is worse)"
            )
        )
        if args.keep:
            print(
                f"== running: AWS_ENDPOINT_URL={moto.url} AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={standin.url}; Ctrl-C"
            )
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return deploy_main(
            [
                "--endpoint-name",
                ENDPOINT,
                "--state-s3",
                f"s3://{BUCKET}/artifacts/state",
                "--teardown",
                "--wait-delay-seconds",
                "1",
            ]
        )
    finally:
        for part in (standin, serve, moto):
            if part is not None:
                part.stop()


if __name__ == "__main__":
    sys.exit(main())
