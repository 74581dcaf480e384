"""training_job.py against a real moto server, with the local training backend really running `train`.

moto alone would mark the job Completed at once with fake metrics and no artifact; here the backend
(local_aws.training_backend, patched into the moto server process) runs container/train on an
/opt/ml tree, uploads model.tar.gz / output.tar.gz to moto's S3, and scrapes the job's stdout with the
MetricDefinitions training_job.py sent: FinalMetricDataList is therefore the product of our regexes.
"""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from scl_delay.aws.cli import training_job_main
from scl_delay.aws.names import NAME_RE
from scl_delay.metric_lines import metric_definitions

from .aws_helpers import COMMIT, IMAGE, REGION, ROLE_ARN, NoAws, run_script, training_args, unique


def _tar(s3, uri: str) -> tarfile.TarFile:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()), mode="r:gz")


def _tar_names(s3, uri: str) -> set[str]:
    with _tar(s3, uri) as tar:
        return set(tar.getnames())


def test_training_job_completes_with_artifacts_where_sagemaker_puts_them(trained, s3, bucket):
    good = trained["good"]
    job = good["job_name"]
    assert good["status"] == "Completed"
    assert NAME_RE.match(job) and len(job) <= 63
    assert job.startswith("scl-delay-pr42-01234567-"), job
    assert good["model_artifact"] == f"s3://{bucket}/artifacts/{job}/output/model.tar.gz"
    assert {"metadata.json", "booster.ubj", "metrics.json", "report.md"} <= _tar_names(
        s3, good["model_artifact"]
    )
    assert "data_quality.json" in _tar_names(s3, good["output_artifact"])


def test_create_training_job_request_carries_metrics_hyperparameters_tags_and_limits(trained, sm):
    """The request as SageMaker received it (moto echoes it; our backend keeps the MetricDefinitions moto
    would overwrite)."""
    desc = sm.describe_training_job(TrainingJobName=trained["good"]["job_name"])
    assert desc["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert desc["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert desc["RoleArn"] == ROLE_ARN
    hp = desc["HyperParameters"]
    assert all(isinstance(v, str) for v in hp.values())
    assert hp["num_round"] == "100" and hp["feature_set"] == "full" and hp["split"] == "time"
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert desc["InputDataConfig"][0]["ChannelName"] == "training"
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=desc["TrainingJobArn"])["Tags"]}
    assert tags["scl-delay:commit"] == COMMIT and tags["scl-delay:pr"] == "42"
    assert tags["scl-delay:repo"] == "acme/scl-delay"
    transitions = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert transitions == ["Starting", "Downloading", "Training", "Uploading", "Completed"]


def test_metric_regexes_scrape_every_metric_train_prints(trained, s3):
    """Every MetricDefinition matched a line of the real train stdout (moto's own FinalMetricDataList is fake:
    the local training backend scrapes the job's stdout with the job's MetricDefinitions, as SageMaker does),
    with the value in metrics.json."""
    good = trained["good"]
    names = {d["Name"] for d in metric_definitions()}
    assert set(good["metric_sources"]["FinalMetricDataList"]) == names
    assert good["metric_sources"]["metrics.json"] == []
    assert set(good["final_metrics"]) == names
    assert 0 < good["final_metrics"]["test:pr_auc"] < 1
    with _tar(s3, good["model_artifact"]) as tar:
        artifact_metrics = json.load(
            tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("metrics.json")))
        )
    assert good["final_metrics"]["test:pr_auc"] == pytest.approx(artifact_metrics["test"]["pr_auc"], abs=1e-6)


def test_result_json_names_job_artifact_metrics_hyperparameters_image(trained):
    good = trained["good"]
    for key in ("job_name", "model_artifact", "final_metrics", "hyperparameters", "image", "commit"):
        assert good[key], key
    assert good["image"] == IMAGE and good["commit"] == COMMIT


def test_report_compares_with_live_model_and_lists_changed_hyperparameters(trained):
    report = trained["good_report"]
    assert report.startswith("<!-- scl-delay-training-report -->")
    assert "against the live model `scl-delay-pr1-00000000-20260101-000000`" in report
    pr_auc = trained["good"]["final_metrics"]["test:pr_auc"]
    assert f"| PR-AUC | {pr_auc:.4f} | 0.5000 | {pr_auc - 0.5:+.4f} ▲ |" in report
    assert "| `num_round` | `1000` | `100` |" in report
    assert "| `early_stopping_rounds` | `50` | `20` |" in report
    assert "`max_depth`" not in report.split("### Artifact")[0].split("Hyperparameters changed")[1]
    assert trained["good"]["model_artifact"] in report
    assert "Training report (from the artifact)" in report and "pr_curve.png" in report
    assert (trained["good_dir"] / "pr_curve.png").stat().st_size > 0


def test_progress_shows_status_transitions_and_log_lines(trained):
    out = trained["weak_stdout"]
    assert "status InProgress" in out and "status Completed" in out
    assert "  Training: " in out
    assert "  | metric test:pr_auc=" in out  # CloudWatch log lines written by the backend, read back


def test_job_is_recorded_for_its_commit(trained, s3, bucket):
    doc = json.loads(
        s3.get_object(Bucket=bucket, Key=f"state-training/training/{COMMIT}.json")["Body"].read()
    )
    assert doc["job_name"] == trained["good"]["job_name"]


def test_failed_job_prints_failure_reason_and_exits_nonzero(tmp_path, s3, bucket):
    """A training file without the SCL columns: `train` writes output/failure and exits 2; the backend
    turns that into Failed + FailureReason as SageMaker does; training_job.py prints it and exits 1."""
    key = f"{unique('broken')}/flights.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n3,4\n")
    proc = run_script(
        "training_job.py",
        training_args(
            bucket, tmp_path, f"s3://{bucket}/{key}", COMMIT, [], f"s3://{bucket}/{unique('state')}"
        ),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "training_result.json").read_text())
    assert result["status"] == "Failed"
    assert result["failure_reason"].startswith("AlgorithmError: DatasetError")
    assert result["failure_reason"] in proc.stdout
    assert "### Failure" in (tmp_path / "report.md").read_text()


MISSING = (
    "missing --image-uri (or $IMAGE_URI), --role-arn (or $SAGEMAKER_ROLE_ARN), --data (or "
    "$TRAINING_DATA_S3_URI), --output-s3 (or $ARTIFACT_S3_PREFIX)"
)


@pytest.mark.parametrize(
    "drop, replace, message",
    [
        (("--image-uri", "--role-arn", "--data", "--output-s3"), {}, MISSING),
        (("--role-arn",), {}, "missing --role-arn (or $SAGEMAKER_ROLE_ARN)"),
        (("--image-uri",), {}, "missing --image-uri (or $IMAGE_URI)"),
        (("--data",), {}, "missing --data (or $TRAINING_DATA_S3_URI)"),
        (
            (),
            {"--data": "/nonexistent/flights.csv"},
            "--data '/nonexistent/flights.csv' is neither an s3:// URI",
        ),
        ((), {"--output-s3": "bucket/out"}, "--output-s3 must look like s3://bucket/prefix"),
        ((), {"--role-arn": "my-role"}, "--role-arn must be an IAM role ARN"),
        (
            (),
            {"--hyperparameters": "/nonexistent.json"},
            "--hyperparameters /nonexistent.json does not exist",
        ),
        ((), {"--job-name": "bad_name!"}, "--job-name 'bad_name!' is not a valid SageMaker name"),
        ((), {"--hp": "max_depth=99"}, "invalid hyperparameter max_depth"),
        ((), {"--hp": "depth=3"}, "unknown hyperparameter(s) depth"),
        ((), {"--instance-count": "two"}, "--instance-count must be an integer"),
        ((), {"--poll-seconds": "soon"}, "--poll-seconds must be a positive number, got 'soon'"),
        ((), {"--wait-timeout-minutes": "0"}, "--wait-timeout-minutes must be a positive number"),
    ],
)
def test_input_errors_are_named_before_any_aws_call(drop, replace, message, tmp_path, capsys, bucket):
    args = training_args(bucket, tmp_path, "s3://b-ok/data/", COMMIT, [], f"s3://{bucket}/state")
    out = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in drop:
            i += 2
            continue
        out += [flag, replace.pop(flag, args[i + 1])] if flag.startswith("--") else [flag]
        i += 2
    for flag, value in replace.items():
        out += [flag, value]
    env = {"AWS_REGION": REGION}
    assert training_job_main(out, env=env, clients_factory=NoAws()) == 2
    assert message in capsys.readouterr().err


def test_missing_region_is_an_input_error(tmp_path, capsys, bucket):
    args = training_args(bucket, tmp_path, "s3://b-ok/data/", COMMIT, [], f"s3://{bucket}/state")
    assert training_job_main(args, env={}, clients_factory=NoAws()) == 2
    assert "no AWS region: pass --region or set AWS_REGION" in capsys.readouterr().err


def test_flags_fall_back_to_environment_variables(tmp_path, capsys):
    """The workflow's variables alone are enough to get past validation (the factory then stops it)."""
    env = {
        "AWS_REGION": REGION,
        "IMAGE_URI": IMAGE,
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "TRAINING_DATA_S3_URI": "s3://b-ok/data/",
        "ARTIFACT_S3_PREFIX": "s3://b-ok/out",
    }
    from scl_delay.aws import cli

    spec, _ = cli.training_spec_from_args(
        ["--hyperparameters", str(cli.Path(__file__).parents[2] / "hyperparameters.json")], env
    )
    assert (spec.image_uri, spec.role_arn, spec.data) == (IMAGE, ROLE_ARN, "s3://b-ok/data/")
    assert spec.state_s3 == "s3://b-ok/out/state"
