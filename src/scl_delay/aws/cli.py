"""argv + environment -> a validated spec -> one package call -> exit code, for training_job.py and deploy.py.

Every flag has an environment-variable fallback (the workflows set variables, people type flags); all of
them are checked before the first AWS call, and every missing one is named in a single message.
Exit codes: 0 done, 1 the AWS side failed (job failed, endpoint rolled back, API error), 2 bad input,
3 refused (gate or provenance; nothing changed), 4 deployed but the smoke test failed: the previous
version was redeployed.
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

EXIT_OK, EXIT_AWS, EXIT_INPUT, EXIT_GATE, EXIT_SMOKE = 0, 1, 2, 3, 4

# flag -> environment variable read when the flag is absent
TRAINING_ENV = {
    "image_uri": "IMAGE_URI",
    "role_arn": "SAGEMAKER_TRAINING_ROLE_ARN",
    "data": "TRAINING_DATA_S3_URI",
    "validation_data": "VALIDATION_DATA_S3_URI",
    "output_s3": "ARTIFACT_S3_PREFIX",
    "instance_type": "TRAINING_INSTANCE_TYPE",
    "instance_count": "TRAINING_INSTANCE_COUNT",
    "pr_number": "PR_NUMBER",
    "repo": "GITHUB_REPOSITORY",
    "model_package_group": "SCL_MODEL_PACKAGE_GROUP",
    "endpoint_name": "SCL_ENDPOINT_NAME",
    "region": "AWS_REGION",
    "commit": "GIT_COMMIT",
    "base_hyperparameters": "BASE_HYPERPARAMETERS_FILE",
}
DEPLOY_ENV = {
    "endpoint_name": "SCL_ENDPOINT_NAME",
    "model_package_group": "SCL_MODEL_PACKAGE_GROUP",
    "deploy_s3": "DEPLOY_S3_PREFIX",
    "commit": "GIT_COMMIT",
    "merge_commit": "GITHUB_SHA",
    "merged_by": "GITHUB_ACTOR",
    "role_arn": "SAGEMAKER_SERVING_ROLE_ARN",
    "apigw_role_arn": "API_GATEWAY_ROLE_ARN",
    "access_log_arn": "GATEWAY_ACCESS_LOG_ARN",
    "instance_type": "ENDPOINT_INSTANCE_TYPE",
    "instance_count": "ENDPOINT_INSTANCE_COUNT",
    "region": "AWS_REGION",
    "min_capacity": "ENDPOINT_MIN_CAPACITY",
    "max_capacity": "ENDPOINT_MAX_CAPACITY",
    "rollback_alarms": "ROLLBACK_ALARM_NAMES",
    "data_capture_percent": "DATA_CAPTURE_PERCENT",
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


# -------------------------------------------------------------------------------------------- training_job.py


def training_parser() -> argparse.ArgumentParser:
    """Flags default to None: the defaults live on TrainingJobSpec, and the help text reads them from
    there."""
    from .training_job import TrainingJobSpec

    d = _defaults(TrainingJobSpec)
    p = argparse.ArgumentParser(
        prog="training_job.py",
        description="Launch a SageMaker training job for this commit with hyperparameters.json, wait, "
        "register the model in the SageMaker Model Registry (PendingManualApproval), and write "
        "training_result.json + report.md. Exit 0 registered, 1 job failed or AWS error, 2 bad input.",
    )
    p.add_argument(
        "--image-uri", help="ECR image:tag (resolved to its digest) or image@sha256:... ($IMAGE_URI)"
    )
    p.add_argument(
        "--training-role-arn",
        "--role-arn",
        dest="role_arn",
        help="SageMaker TRAINING execution role ($SAGEMAKER_TRAINING_ROLE_ARN); never the serving role",
    )
    p.add_argument(
        "--data",
        help="training CSV: s3:// prefix or object, or a local file to upload ($TRAINING_DATA_S3_URI)",
    )
    p.add_argument(
        "--validation-data", help="optional validation channel, same forms ($VALIDATION_DATA_S3_URI)"
    )
    p.add_argument(
        "--output-s3",
        help="artifact prefix ($ARTIFACT_S3_PREFIX); this job writes only under <prefix>/pr-<N>/",
    )
    p.add_argument(
        "--hyperparameters", default="hyperparameters.json", help="JSON object (default: %(default)s)"
    )
    p.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="override one hyperparameter"
    )
    p.add_argument("--instance-type", help=f"default {d['instance_type']} ($TRAINING_INSTANCE_TYPE)")
    p.add_argument(
        "--instance-count", help="must be 1: the container trains on one host ($TRAINING_INSTANCE_COUNT)"
    )
    p.add_argument("--volume-gb", help=f"default {d['volume_gb']}")
    p.add_argument("--max-runtime-minutes", help=f"StoppingCondition (default {d['max_runtime_s'] // 60})")
    p.add_argument(
        "--spot",
        action="store_true",
        default=None,
        help="managed spot training, checkpoints synced to <prefix>/checkpoints/<job>/ (an interrupted "
        "job restarts `train` from the start: the container does not resume from a checkpoint)",
    )
    p.add_argument(
        "--max-wait-minutes", help="spot only: runtime plus waiting for capacity (default 2 x runtime)"
    )
    p.add_argument("--job-name", help="default scl-delay-pr<N>-<commit8>-<utc stamp>")
    p.add_argument("--commit", help="git commit ($GIT_COMMIT, $GITHUB_SHA, else git rev-parse HEAD)")
    p.add_argument("--pr-number", help="tagged on the job and the model package ($PR_NUMBER)")
    p.add_argument("--repo", help="owner/name, tagged on the job and the package ($GITHUB_REPOSITORY)")
    p.add_argument(
        "--model-package-group",
        help=f"registry group to register in (default {d['model_package_group']}; $SCL_MODEL_PACKAGE_GROUP)",
    )
    p.add_argument(
        "--endpoint-name",
        help=f"endpoint whose live version the report compares against (default {d['endpoint_name']}; "
        "$SCL_ENDPOINT_NAME)",
    )
    p.add_argument(
        "--base-hyperparameters",
        help="main's hyperparameters.json to diff against "
        "($BASE_HYPERPARAMETERS_FILE; default: git show origin/main:hyperparameters.json, "
        "else the live version's)",
    )
    p.add_argument("--region", help="($AWS_REGION, $AWS_DEFAULT_REGION)")
    p.add_argument("--result", default="training_result.json")
    p.add_argument("--report", default="report.md")
    p.add_argument("--poll-seconds", help=f"default {d['poll_s']:g}")
    p.add_argument(
        "--wait-timeout-minutes",
        help=f"default {d['wait_timeout_s'] / 60:g}; keep it below the workflow's timeout-minutes",
    )
    return p


def _defaults(spec_class) -> dict:
    from dataclasses import MISSING, fields

    return {f.name: f.default for f in fields(spec_class) if f.default is not MISSING}


def _given(**values) -> dict:
    """Only the values the caller gave: what is left out takes the spec dataclass's default. An empty string
    (``--instance-type "$UNSET_VARIABLE"``) counts as not given."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


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
        {
            "image_uri": "--image-uri",
            "role_arn": "--training-role-arn",
            "data": "--data",
            "output_s3": "--output-s3",
        },
        TRAINING_ENV,
    )
    if missing:
        raise InputError(f"missing {', '.join(missing)}")
    region = region_from(env, args.region)
    spec = TrainingJobSpec(
        region=region,
        image_uri=args.image_uri,
        role_arn=args.role_arn,
        data=args.data,
        output_s3=args.output_s3,
        hyperparameters=_load_hyperparameters(Path(args.hyperparameters), args.hp),
        commit=git_commit(env, args.commit),
        **_given(
            validation_data=args.validation_data,
            instance_type=args.instance_type,
            instance_count=_opt_int(args, "instance_count", "--instance-count"),
            volume_gb=_opt_int(args, "volume_gb", "--volume-gb"),
            max_runtime_s=_minutes(args, "max_runtime_minutes", "--max-runtime-minutes"),
            spot=args.spot,
            max_wait_s=_minutes(args, "max_wait_minutes", "--max-wait-minutes"),
            pr_number=args.pr_number,
            repo=args.repo,
            model_package_group=args.model_package_group,
            endpoint_name=args.endpoint_name,
            job_name=args.job_name,
            poll_s=_opt_positive(args, "poll_seconds", "--poll-seconds"),
            wait_timeout_s=_opt_positive(args, "wait_timeout_minutes", "--wait-timeout-minutes", 60),
        ),
    )
    check_spec(spec)
    return spec, args


def _opt_int(args, attr: str, flag: str) -> int | None:
    return None if getattr(args, attr, None) in (None, "") else _int_arg(args, attr, flag)


def _minutes(args, attr: str, flag: str) -> int | None:
    value = _opt_int(args, attr, flag)
    return None if value is None else 60 * value


def _opt_positive(args, attr: str, flag: str, scale: float = 1) -> float | None:
    return None if getattr(args, attr, None) in (None, "") else scale * _positive_arg(args, attr, flag)


def training_job_main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, clients_factory=make_clients
) -> int:
    """Exit 0: Completed and registered; 1: the job failed or AWS answered an error; 2: bad input."""
    env = os.environ if env is None else env

    def body() -> int:
        from .training_job import run

        spec, args = training_spec_from_args(argv, env)
        base, label = _base_hyperparameters(args.base_hyperparameters)
        clients = clients_factory(spec.region)
        return run(clients, spec, Path(args.result), Path(args.report), base, label, _out)

    return _run_guarded(body, _err)


# ----------------------------------------------------------------------------------------------- deploy.py


def deploy_parser() -> argparse.ArgumentParser:
    """Flags default to None: the defaults live on DeploySpec, and the help text reads them from there."""
    from .deploy import DeploySpec

    d = _defaults(DeploySpec)
    p = argparse.ArgumentParser(
        prog="deploy.py",
        description="Deploy the registered model version of a merged commit: provenance checks, gate against "
        "the live version, approve (or reject), SageMaker endpoint (create or blue/green) behind API "
        "Gateway, smoke test, and rollback to the previous approved version. Also --list, --rollback, "
        "--teardown. Exit 0 done, 1 AWS failure, 2 bad input, 3 refused (nothing changed), 4 smoke test "
        "failed and the previous version was redeployed.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--list", action="store_true", help="print the registry's versions and which one is live"
    )
    mode.add_argument(
        "--rollback",
        action="store_true",
        help="reject the live version and redeploy the newest other Approved one (--reason says why)",
    )
    mode.add_argument(
        "--teardown",
        action="store_true",
        help="delete everything deploy.py created for this endpoint (tagged), and only that; "
        "the registry stays",
    )
    p.add_argument(
        "--purge-registry", action="store_true", help="with --teardown: delete the registry group too"
    )
    p.add_argument("--reason", default="rolled back by hand", help="with --rollback: recorded on the version")
    p.add_argument(
        "--endpoint-name", help=f"stable endpoint name (default {d['endpoint_name']}; $SCL_ENDPOINT_NAME)"
    )
    p.add_argument(
        "--model-package-group", help="registry group (default: the endpoint name; $SCL_MODEL_PACKAGE_GROUP)"
    )
    p.add_argument(
        "--commit", help="the trained commit (merged PR's head) whose version to deploy ($GIT_COMMIT)"
    )
    p.add_argument("--model-version", help="deploy this version number instead (manual redeploy)")
    p.add_argument("--merge-commit", help="recorded in the approval ($GITHUB_SHA)")
    p.add_argument("--merged-by", help="login recorded in the approval ($GITHUB_ACTOR)")
    p.add_argument(
        "--deploy-s3",
        help="deploy-only prefix for the artifact copy and data capture ($DEPLOY_S3_PREFIX)",
    )
    p.add_argument(
        "--serving-role-arn",
        "--role-arn",
        dest="role_arn",
        help="SageMaker SERVING execution role for the model ($SAGEMAKER_SERVING_ROLE_ARN)",
    )
    p.add_argument(
        "--apigw-role-arn",
        "--api-role-arn",
        dest="apigw_role_arn",
        help="role API Gateway assumes to call InvokeEndpoint ($API_GATEWAY_ROLE_ARN)",
    )
    p.add_argument(
        "--access-log-arn",
        help="CloudWatch Logs group for the stage's access log, the stack output GatewayAccessLogGroupArn "
        "(default: no access log; $GATEWAY_ACCESS_LOG_ARN)",
    )
    p.add_argument("--instance-type", help=f"default {d['instance_type']} ($ENDPOINT_INSTANCE_TYPE)")
    p.add_argument(
        "--instance-count",
        help=f"initial instances (default {d['instance_count']}; 2 or more for Availability Zone redundancy; "
        "$ENDPOINT_INSTANCE_COUNT)",
    )
    p.add_argument(
        "--min-capacity", help=f"auto scaling minimum (default {d['min_capacity']}; $ENDPOINT_MIN_CAPACITY)"
    )
    p.add_argument(
        "--max-capacity", help=f"auto scaling maximum (default {d['max_capacity']}; $ENDPOINT_MAX_CAPACITY)"
    )
    p.add_argument(
        "--target-invocations",
        help=f"target invocations per instance per minute (default {d['target_invocations']:g})",
    )
    p.add_argument("--gate-metric", help=f"champion/challenger metric (default {d['gate_metric']})")
    p.add_argument(
        "--tolerance", help=f"how much worse than live is still accepted (default {d['tolerance']})"
    )
    p.add_argument("--force", action="store_true", default=None, help="deploy even if the gate refuses")
    p.add_argument(
        "--no-alarms",
        dest="create_alarms",
        action="store_false",
        default=None,
        help="do not create the 5xx and p99-latency alarms that roll a blue/green update back",
    )
    p.add_argument(
        "--rollback-alarm",
        dest="rollback_alarms",
        action="append",
        help="another existing CloudWatch alarm that rolls a blue/green update back (repeatable; "
        "$ROLLBACK_ALARM_NAMES comma-separated)",
    )
    p.add_argument(
        "--latency-alarm-ms", help=f"p99 model latency alarm threshold (default {d['latency_alarm_ms']})"
    )
    p.add_argument(
        "--data-capture-percent",
        help="capture this share of requests and answers under <deploy-s3>/<endpoint>/data-capture/ "
        "(default 0: off; $DATA_CAPTURE_PERCENT)",
    )
    p.add_argument("--api-name", help="REST API name (default: the endpoint name)")
    p.add_argument("--stage", help=f"default {d['stage']}")
    p.add_argument("--rate-limit", help=f"usage plan steady requests/s (default {d['rate_limit']:g})")
    p.add_argument("--burst-limit", help=f"usage plan burst (default {d['burst_limit']})")
    p.add_argument(
        "--smoke-test",
        action="store_true",
        default=None,
        help="after the deploy, POST one flight through the gateway URL; on failure roll back (exit 4)",
    )
    p.add_argument("--smoke-attempts", help=f"default {d['smoke_attempts']}")
    p.add_argument("--smoke-delay-seconds", help=f"between attempts (default {d['smoke_delay_s']:g})")
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        default="deploy_result.json",
        help="outcome JSON (written on failure too; also appended to $GITHUB_OUTPUT when set)",
    )
    p.add_argument("--region", help="($AWS_REGION, $AWS_DEFAULT_REGION)")
    p.add_argument("--wait-delay-seconds", help=f"default {d['wait_delay_s']}")
    p.add_argument(
        "--wait-max-attempts",
        help=f"default {d['wait_max_attempts']}; an update waits at least the blue/green maximum",
    )
    return p


def deploy_spec_from_args(argv: list[str] | None, env: Mapping[str, str]):
    from .deploy import DeploySpec, check_spec

    args = deploy_parser().parse_args(argv)
    _resolve(args, DEPLOY_ENV, env)
    if args.purge_registry and not args.teardown:
        raise InputError("--purge-registry goes with --teardown")
    deploying = not (args.teardown or args.list or args.rollback)
    if deploying or args.rollback:
        missing = _missing(
            args, {"role_arn": "--serving-role-arn", "apigw_role_arn": "--apigw-role-arn"}, DEPLOY_ENV
        )
        if missing:
            raise InputError(f"missing {', '.join(missing)}")
    if deploying and not args.commit and not args.model_version:
        raise InputError(
            "missing --commit (or $GIT_COMMIT), the trained commit whose version to deploy, "
            "or --model-version"
        )
    alarms = args.rollback_alarms
    if isinstance(alarms, str):
        alarms = [a.strip() for a in alarms.split(",") if a.strip()]
    try:
        spec = DeploySpec(
            region=region_from(env, args.region),
            **_given(
                endpoint_name=args.endpoint_name,
                model_package_group=args.model_package_group,
                deploy_s3=args.deploy_s3,
                commit=args.commit,
                model_version=_opt_int(args, "model_version", "--model-version"),
                merge_commit=args.merge_commit,
                merged_by=args.merged_by,
                role_arn=args.role_arn,
                apigw_role_arn=args.apigw_role_arn,
                access_log_arn=args.access_log_arn,
                instance_type=args.instance_type,
                instance_count=_opt_int(args, "instance_count", "--instance-count"),
                min_capacity=_opt_int(args, "min_capacity", "--min-capacity"),
                max_capacity=_opt_int(args, "max_capacity", "--max-capacity"),
                target_invocations=_opt_float(args.target_invocations),
                gate_metric=args.gate_metric,
                tolerance=_opt_float(args.tolerance),
                force=args.force,
                create_alarms=args.create_alarms,
                rollback_alarms=tuple(alarms) if alarms else None,
                latency_alarm_ms=_opt_int(args, "latency_alarm_ms", "--latency-alarm-ms"),
                data_capture_percent=_opt_int(args, "data_capture_percent", "--data-capture-percent"),
                api_name=args.api_name,
                stage=args.stage,
                rate_limit=_opt_float(args.rate_limit),
                burst_limit=_opt_int(args, "burst_limit", "--burst-limit"),
                wait_delay_s=_opt_int(args, "wait_delay_seconds", "--wait-delay-seconds"),
                wait_max_attempts=_opt_int(args, "wait_max_attempts", "--wait-max-attempts"),
                smoke_test=args.smoke_test,
                smoke_attempts=_opt_int(args, "smoke_attempts", "--smoke-attempts"),
                smoke_delay_s=_opt_float(args.smoke_delay_seconds),
            ),
        )
    except ValueError as e:
        raise InputError(f"a numeric flag has a bad value: {e}") from None
    check_spec(spec, teardown=not (deploying or args.rollback))
    return spec, args


def _opt_float(value) -> float | None:
    return None if value in (None, "") else float(value)


def _finish(outcome: dict, args, env: Mapping[str, str], code: int, error: str | None) -> int:
    """The result file and step outputs are written on failure too: the workflow reads them."""
    from .deploy import write_outputs

    write_outputs({**outcome, "exit_code": code, "error": error}, Path(args.output), env.get("GITHUB_OUTPUT"))
    return code


def deploy_main(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None, clients_factory=make_clients
) -> int:
    env = os.environ if env is None else env

    def body() -> int:
        from . import deploy as d

        spec, args = deploy_spec_from_args(argv, env)
        clients = clients_factory(spec.region)
        if args.list:
            _out(d.format_versions(d.list_versions(clients, spec), spec.model_package_group))
            return EXIT_OK
        if args.teardown:
            d.teardown(clients, spec, _out, purge_registry=args.purge_registry)
            return EXIT_OK
        outcome: dict = {"endpoint_name": spec.endpoint_name, "changed": False, "rolled_back": False}
        try:
            if args.rollback:
                outcome.update(d.rollback(clients, spec, args.reason, _out), rolled_back=True)
            else:
                d.deploy_with_rollback(clients, spec, _out, outcome)
        except d.SmokeTestError as e:
            _err(f"error: {e}")
            code = EXIT_SMOKE if outcome.get("rolled_back") else EXIT_AWS
            return _finish(outcome, args, env, code, str(e))
        except d.RefusedError as e:
            _err(f"refused: {e}")
            return _finish(outcome, args, env, EXIT_GATE, f"refused: {e}")
        except d.RollbackError as e:
            _err(f"error: {e}")
            return _finish(outcome, args, env, EXIT_AWS, str(e))
        except (ClientError, BotoCoreError, WaiterError) as e:
            _err(f"error: AWS: {e}")
            return _finish(outcome, args, env, EXIT_AWS, f"AWS: {e}")
        except InputError as e:  # e.g. no version registered for the commit
            _err(f"error: {e}")
            return _finish(outcome, args, env, EXIT_INPUT, str(e))
        if outcome.get("invoke_url"):
            _out(f"invoke URL: {outcome['invoke_url']}")
        return _finish(outcome, args, env, EXIT_OK, None)

    return _run_guarded(body, _err)
