"""argv + environment -> a validated spec -> one package call -> exit code, for training_job.py and deploy.py.

Every flag has an environment-variable fallback (the workflows set variables, people type flags); all of
them are checked before the first AWS call, and every missing one is named in a single message.
Exit codes: 0 done, 1 the AWS side failed (job failed, rollback, API error), 2 bad input, 3 gate refused.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from ..errors import InputError
from ..git import head_commit
from .clients import make_clients, region_from

EXIT_OK, EXIT_AWS, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3
STATE_FOLDER = "state"  # default state prefix under the artifact prefix

# flag -> environment variable read when the flag is absent
TRAINING_ENV = {
    "image_uri": "IMAGE_URI",
    "role_arn": "SAGEMAKER_ROLE_ARN",
    "data": "TRAINING_DATA_S3_URI",
    "validation_data": "VALIDATION_DATA_S3_URI",
    "output_s3": "ARTIFACT_S3_PREFIX",
    "instance_type": "TRAINING_INSTANCE_TYPE",
    "instance_count": "TRAINING_INSTANCE_COUNT",
    "pr_number": "PR_NUMBER",
    "repo": "GITHUB_REPOSITORY",
    "state_s3": "SCL_STATE_S3_URI",
    "region": "AWS_REGION",
    "commit": "GIT_COMMIT",
    "base_hyperparameters": "BASE_HYPERPARAMETERS_FILE",
}
DEPLOY_ENV = {
    "endpoint_name": "SCL_ENDPOINT_NAME",
    "state_s3": "SCL_STATE_S3_URI",
    "training_job": "TRAINING_JOB_NAME",
    "commit": "GIT_COMMIT",
    "role_arn": "SAGEMAKER_ROLE_ARN",
    "apigw_role_arn": "API_GATEWAY_ROLE_ARN",
    "image_uri": "IMAGE_URI",
    "instance_type": "ENDPOINT_INSTANCE_TYPE",
    "region": "AWS_REGION",
    "min_capacity": "ENDPOINT_MIN_CAPACITY",
    "max_capacity": "ENDPOINT_MAX_CAPACITY",
    "rollback_alarms": "ROLLBACK_ALARM_NAMES",
}


def _resolve(args: argparse.Namespace, table: Mapping[str, str], env: Mapping[str, str]) -> None:
    for attr, var in table.items():
        if getattr(args, attr, None) in (None, "") and env.get(var):
            setattr(args, attr, env[var])


def _missing(args: argparse.Namespace, required: Mapping[str, str], table: Mapping[str, str]) -> list[str]:
    return [
        f"{flag} (or ${table[attr]})" if attr in table else flag
        for attr, flag in required.items()
        if not getattr(args, attr, None)
    ]


def _int_arg(args, attr: str, flag: str) -> int:
    try:
        return int(getattr(args, attr))
    except (TypeError, ValueError):
        raise InputError(f"{flag} must be an integer, got {getattr(args, attr)!r}") from None


def _positive_arg(args, attr: str, flag: str) -> float:
    try:
        value = float(getattr(args, attr))
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0:
        raise InputError(f"{flag} must be a positive number, got {getattr(args, attr)!r}")
    return value


def git_commit(env: Mapping[str, str], flag: str | None) -> str:
    commit = flag or env.get("GIT_COMMIT") or env.get("GITHUB_SHA")
    return commit or head_commit()


def _run_guarded(body: Callable[[], int], say: Callable[[str], None]) -> int:
    """Map errors to exit codes; SIGTERM (a cancelled workflow) behaves like Ctrl-C."""

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        return body()
    except InputError as e:
        say(f"error: {e}")
        return EXIT_INPUT
    except (ClientError, BotoCoreError, WaiterError, TimeoutError) as e:
        say(f"error: AWS: {e}")
        return EXIT_AWS
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _out(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------------------------- training_job.py


def training_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="training_job.py",
        description="Launch a SageMaker training job for this "
        "commit with hyperparameters.json, wait, and write training_result.json + report.md.",
    )
    p.add_argument("--image-uri", help="ECR image with the `train` entry point ($IMAGE_URI)")
    p.add_argument("--role-arn", help="SageMaker execution role ARN ($SAGEMAKER_ROLE_ARN)")
    p.add_argument(
        "--data",
        help="training CSV: s3:// prefix or object, or a local file to upload ($TRAINING_DATA_S3_URI)",
    )
    p.add_argument(
        "--validation-data", help="optional validation channel, same forms ($VALIDATION_DATA_S3_URI)"
    )
    p.add_argument("--output-s3", help="S3OutputPath for artifacts ($ARTIFACT_S3_PREFIX)")
    p.add_argument(
        "--hyperparameters", default="hyperparameters.json", help="JSON object (default: %(default)s)"
    )
    p.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="override one hyperparameter"
    )
    p.add_argument("--instance-type", help="default ml.m5.large ($TRAINING_INSTANCE_TYPE)")
    p.add_argument("--instance-count", help="default 1 ($TRAINING_INSTANCE_COUNT)")
    p.add_argument("--volume-gb", default="10")
    p.add_argument("--max-runtime-minutes", default="60", help="StoppingCondition (default: %(default)s)")
    p.add_argument("--job-name", help="default scl-delay-pr<N>-<commit8>-<utc stamp>")
    p.add_argument("--commit", help="git commit ($GIT_COMMIT, $GITHUB_SHA, else git rev-parse HEAD)")
    p.add_argument("--pr-number", help="tagged on the job ($PR_NUMBER)")
    p.add_argument("--repo", help="owner/name, tagged on the job ($GITHUB_REPOSITORY)")
    p.add_argument(
        "--state-s3",
        help="s3:// prefix where deploy.py records the live model ($SCL_STATE_S3_URI; "
        "default <output-s3>/state); the report compares against it, and this job is recorded "
        "there for its commit",
    )
    p.add_argument(
        "--base-hyperparameters",
        help="main's hyperparameters.json to diff against "
        "($BASE_HYPERPARAMETERS_FILE; default: git show origin/main:hyperparameters.json, "
        "else the live model's)",
    )
    p.add_argument("--region", help="($AWS_REGION, $AWS_DEFAULT_REGION)")
    p.add_argument("--result", default="training_result.json")
    p.add_argument("--report", default="report.md")
    p.add_argument("--poll-seconds", default="30")
    p.add_argument("--wait-timeout-minutes", default="240")
    return p


def _load_hyperparameters(path: Path, overrides: list[str]) -> dict[str, str]:
    from ..hyperparameters import parse_hyperparameters, parse_overrides

    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--hyperparameters {path} does not exist") from None
    except ValueError as e:
        raise InputError(f"--hyperparameters {path} is not valid JSON: {e}") from None
    if not isinstance(values, dict):
        raise InputError(f"--hyperparameters {path} must hold a JSON object")
    return parse_hyperparameters({**values, **parse_overrides(overrides)}).to_strings()


def _base_hyperparameters(flag: str | None) -> tuple[dict[str, str] | None, str]:
    from ..hyperparameters import parse_hyperparameters

    text = None
    if flag:
        try:
            text = Path(flag).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"--base-hyperparameters {flag}: {e}") from None
    else:
        for ref in ("origin/main", "main"):
            try:
                out = subprocess.run(
                    ["git", "show", f"{ref}:hyperparameters.json"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                break
            if out.returncode == 0:
                text = out.stdout
                break
    if text is None:
        return None, "main"
    try:
        return parse_hyperparameters(json.loads(text)).to_strings(), "main"
    except (InputError, ValueError):  # main's file may predate a renamed key: compare raw strings
        raw = json.loads(text)
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}, "main"


def training_spec_from_args(argv: list[str] | None, env: Mapping[str, str]):
    """Parse and validate; InputError names everything that is missing or wrong. No AWS call."""
    from .training_job import TrainingJobSpec, check_spec

    args = training_parser().parse_args(argv)
    _resolve(args, TRAINING_ENV, env)
    missing = _missing(
        args,
        {"image_uri": "--image-uri", "role_arn": "--role-arn", "data": "--data", "output_s3": "--output-s3"},
        TRAINING_ENV,
    )
    if missing:
        raise InputError(f"missing {', '.join(missing)}")
    if not args.state_s3 and args.output_s3.startswith("s3://"):
        args.state_s3 = f"{args.output_s3.rstrip('/')}/{STATE_FOLDER}"
    region = region_from(env, args.region)
    spec = TrainingJobSpec(
        region=region,
        image_uri=args.image_uri,
        role_arn=args.role_arn,
        data=args.data,
        validation_data=args.validation_data,
        output_s3=args.output_s3,
        hyperparameters=_load_hyperparameters(Path(args.hyperparameters), args.hp),
        commit=git_commit(env, args.commit),
        instance_type=args.instance_type or "ml.m5.large",
        instance_count=_int_arg(args, "instance_count", "--instance-count") if args.instance_count else 1,
        volume_gb=_int_arg(args, "volume_gb", "--volume-gb"),
        max_runtime_s=60 * _int_arg(args, "max_runtime_minutes", "--max-runtime-minutes"),
        pr_number=args.pr_number,
        repo=args.repo,
        state_s3=args.state_s3,
        job_name=args.job_name,
        poll_s=_positive_arg(args, "poll_seconds", "--poll-seconds"),
        wait_timeout_s=60 * _positive_arg(args, "wait_timeout_minutes", "--wait-timeout-minutes"),
    )
    check_spec(spec)
    return spec, args


def training_job_main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, clients_factory=make_clients
) -> int:
    env = os.environ if env is None else env

    def body() -> int:
        from .training_job import run

        spec, args = training_spec_from_args(argv, env)
        base, label = _base_hyperparameters(args.base_hyperparameters)
        clients = clients_factory(spec.region)
        if base is None and spec.state_s3:
            from . import live_record

            live = live_record.read_live(clients.s3, spec.state_s3)
            if live and live.get("hyperparameters"):
                base, label = live["hyperparameters"], "the live model"
        return run(clients, spec, Path(args.result), Path(args.report), base, label, _out)

    return _run_guarded(body, _err)


# ----------------------------------------------------------------------------------------------- deploy.py


def deploy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deploy.py",
        description="Deploy a trained model to a SageMaker endpoint "
        "behind API Gateway (create or blue/green update), or --teardown what it created.",
    )
    p.add_argument("--endpoint-name", help="stable endpoint name (default scl-delay; $SCL_ENDPOINT_NAME)")
    p.add_argument(
        "--state-s3",
        help="s3:// prefix of live.json and the per-commit training records "
        "($SCL_STATE_S3_URI; default $ARTIFACT_S3_PREFIX/state)",
    )
    p.add_argument(
        "--training-job", help="job to deploy ($TRAINING_JOB_NAME; default: the one recorded for --commit)"
    )
    p.add_argument(
        "--commit", help="merged commit whose recorded training job to deploy ($GIT_COMMIT, $GITHUB_SHA)"
    )
    p.add_argument("--role-arn", help="SageMaker execution role for the model ($SAGEMAKER_ROLE_ARN)")
    p.add_argument(
        "--api-role-arn",
        "--apigw-role-arn",
        dest="apigw_role_arn",
        help="role API Gateway assumes to call InvokeEndpoint ($API_GATEWAY_ROLE_ARN)",
    )
    p.add_argument("--image-uri", help="serving image (default: the training job's image; $IMAGE_URI)")
    p.add_argument("--instance-type", help="default ml.m5.large ($ENDPOINT_INSTANCE_TYPE)")
    p.add_argument("--instance-count", default="1", help="initial instances (default: %(default)s)")
    p.add_argument("--min-capacity", help="auto scaling minimum (default 1; $ENDPOINT_MIN_CAPACITY)")
    p.add_argument("--max-capacity", help="auto scaling maximum (default 4; $ENDPOINT_MAX_CAPACITY)")
    p.add_argument(
        "--target-invocations",
        default="100",
        help="target invocations per instance per minute (default: %(default)s)",
    )
    p.add_argument(
        "--gate-metric", default="test:pr_auc", help="champion/challenger metric (default: %(default)s)"
    )
    p.add_argument(
        "--tolerance",
        default="0.01",
        help="how much worse than live is still accepted (default: %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="deploy even if the gate refuses")
    p.add_argument(
        "--rollback-alarm",
        dest="rollback_alarms",
        action="append",
        help="CloudWatch alarm that rolls a blue/green update back (repeatable; "
        "$ROLLBACK_ALARM_NAMES comma-separated)",
    )
    p.add_argument("--api-name", help="REST API name (default: the endpoint name)")
    p.add_argument("--stage", default="prod")
    p.add_argument("--rate-limit", default="20", help="usage plan steady requests/s (default: %(default)s)")
    p.add_argument("--burst-limit", default="40", help="usage plan burst (default: %(default)s)")
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        default="deploy_result.json",
        help="JSON with invoke_url, api_key_id, endpoint_name, training_job, previous_training_job "
        "(written on failure too); also appended to $GITHUB_OUTPUT when set",
    )
    p.add_argument("--region", help="($AWS_REGION, $AWS_DEFAULT_REGION)")
    p.add_argument("--wait-delay-seconds", default="30")
    p.add_argument("--wait-max-attempts", default="60")
    p.add_argument(
        "--teardown",
        action="store_true",
        help="delete everything deploy.py created for this endpoint (tagged), and only that",
    )
    return p


def deploy_spec_from_args(argv: list[str] | None, env: Mapping[str, str]):
    from .deploy import DeploySpec, check_spec

    args = deploy_parser().parse_args(argv)
    _resolve(args, DEPLOY_ENV, env)
    if not args.state_s3 and env.get("ARTIFACT_S3_PREFIX", "").startswith("s3://"):
        args.state_s3 = f"{env['ARTIFACT_S3_PREFIX'].rstrip('/')}/{STATE_FOLDER}"
    required = {"state_s3": "--state-s3"}
    if not args.teardown:
        required |= {"role_arn": "--role-arn", "apigw_role_arn": "--apigw-role-arn"}
    missing = _missing(args, required, DEPLOY_ENV)
    if missing:
        raise InputError(f"missing {', '.join(missing)}")
    region = region_from(env, args.region)
    alarms = args.rollback_alarms
    if isinstance(alarms, str):
        alarms = [a.strip() for a in alarms.split(",") if a.strip()]
    commit = args.commit or env.get("GITHUB_SHA")
    if not args.teardown and not args.training_job and not commit:
        raise InputError(
            "missing --training-job (or $TRAINING_JOB_NAME), or --commit (or $GIT_COMMIT, "
            "$GITHUB_SHA) whose recorded training job to deploy"
        )
    try:
        spec = DeploySpec(
            region=region,
            endpoint_name=args.endpoint_name or "scl-delay",
            state_s3=args.state_s3,
            training_job=args.training_job,
            commit=commit,
            role_arn=args.role_arn,
            apigw_role_arn=args.apigw_role_arn,
            image_uri=args.image_uri,
            instance_type=args.instance_type or "ml.m5.large",
            instance_count=int(args.instance_count),
            min_capacity=int(args.min_capacity or 1),
            max_capacity=int(args.max_capacity or 4),
            target_invocations=float(args.target_invocations),
            gate_metric=args.gate_metric,
            tolerance=float(args.tolerance),
            force=args.force,
            rollback_alarms=tuple(alarms or ()),
            api_name=args.api_name or args.endpoint_name or "scl-delay",
            stage=args.stage,
            rate_limit=float(args.rate_limit),
            burst_limit=int(args.burst_limit),
            wait_delay_s=int(args.wait_delay_seconds),
            wait_max_attempts=int(args.wait_max_attempts),
        )
    except ValueError as e:
        raise InputError(f"a numeric flag has a bad value: {e}") from None
    check_spec(spec)
    return spec, args


def _finish(outcome: dict, args, env: Mapping[str, str], code: int, error: str | None) -> int:
    """The result file and step outputs are written on failure too: the workflow's rollback reads them."""
    from .deploy import write_outputs

    write_outputs({**outcome, "error": error}, Path(args.output), env.get("GITHUB_OUTPUT"))
    return code


def deploy_main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, clients_factory=make_clients
) -> int:
    env = os.environ if env is None else env

    def body() -> int:
        from .deploy import GateRefusedError, RollbackError, deploy, teardown

        spec, args = deploy_spec_from_args(argv, env)
        clients = clients_factory(spec.region)
        if args.teardown:
            teardown(clients, spec, _out)
            return EXIT_OK
        outcome: dict = {"endpoint_name": spec.endpoint_name}
        try:
            deploy(clients, spec, _out, outcome)
        except GateRefusedError as e:
            _err(f"refused: {e}")
            return _finish(outcome, args, env, EXIT_GATE, f"gate refused: {e}")
        except RollbackError as e:
            _err(f"error: {e}")
            return _finish(outcome, args, env, EXIT_AWS, str(e))
        except (ClientError, BotoCoreError, WaiterError) as e:
            _err(f"error: AWS: {e}")
            return _finish(outcome, args, env, EXIT_AWS, f"AWS: {e}")
        except InputError as e:  # e.g. no training job recorded for the commit
            _err(f"error: {e}")
            return _finish(outcome, args, env, EXIT_INPUT, str(e))
        _out(f"invoke URL: {outcome['invoke_url']}")
        return _finish(outcome, args, env, EXIT_OK, None)

    return _run_guarded(body, _err)
