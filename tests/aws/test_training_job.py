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

from .aws_helpers import COMMIT, GROUP, IMAGE, REGION, ROLE_ARN, NoAws, run_script, training_args, unique


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
    # the PR's job writes only under its own prefix, ending in a slash in every policy
    assert good["model_artifact"] == f"s3://{bucket}/training/pr-42/{job}/output/model.tar.gz"
    assert {"metadata.json", "booster.ubj", "metrics.json", "report.md"} <= _tar_names(
        s3, good["model_artifact"]
    )
    assert "data_quality.json" in _tar_names(s3, good["output_artifact"])


def test_create_training_job_request_carries_metrics_hyperparameters_tags_and_limits(trained, sm, images):
    """The request as SageMaker received it (moto echoes it; our backend keeps the MetricDefinitions moto
    would overwrite). The image runs by the digest its tag pointed at, with no network."""
    desc = sm.describe_training_job(TrainingJobName=trained["good"]["job_name"])
    assert desc["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    digest = images[COMMIT]
    assert desc["AlgorithmSpecification"]["TrainingImage"] == f"{IMAGE.rsplit(':', 1)[0]}@{digest}"
    assert trained["good"]["image_digest"] == digest
    assert desc["EnableNetworkIsolation"] is True
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
    assert good["image"] == f"{IMAGE.rsplit(':', 1)[0]}@{good['image_digest']}" and good["commit"] == COMMIT


def test_report_lists_changed_hyperparameters_and_the_registered_version(trained):
    """No endpoint serves a version yet (the live comparison is tested in test_registry.py)."""
    report = trained["good_report"]
    good = trained["good"]
    assert report.startswith("<!-- scl-delay-training-report -->")
    assert "No model is live yet" in report
    assert "| `num_round` | `1000` | `100` |" in report
    assert "| `early_stopping_rounds` | `50` | `20` |" in report
    assert "`max_depth`" not in report.split("### Artifact")[0].split("Hyperparameters changed")[1]
    assert good["model_artifact"] in report
    assert "### Model registry" in report
    assert f"v{good['model_package_version']}" in report and "PendingManualApproval" in report
    assert good["model_package_arn"] in report
    assert "Training report (from the artifact)" in report and "pr_curve.png" in report
    assert (trained["good_dir"] / "pr_curve.png").stat().st_size > 0


def test_progress_shows_status_transitions_and_log_lines(trained):
    out = trained["weak_stdout"]
    assert "status InProgress" in out and "status Completed" in out
    assert "  Training: " in out
    assert "  | metric test:pr_auc=" in out  # CloudWatch log lines written by the backend, read back


def test_completed_job_is_registered_pending_with_digest_metrics_and_metadata(trained, sm, s3, images):
    """Checked in moto's registry (moto 5.2 keeps every CreateModelPackage field asked for here)."""
    good = trained["good"]
    desc = sm.describe_model_package(ModelPackageName=good["model_package_arn"])
    assert desc["ModelPackageGroupName"] == GROUP
    assert desc["ModelApprovalStatus"] == "PendingManualApproval"
    container = desc["InferenceSpecification"]["Containers"][0]
    assert container["ImageDigest"] == images[COMMIT] and container["Image"].endswith(f"@{images[COMMIT]}")
    assert container["ModelDataUrl"] == good["model_artifact"]
    spec = desc["InferenceSpecification"]
    assert (
        "text/csv" in spec["SupportedContentTypes"]
        and "application/json" in spec["SupportedResponseMIMETypes"]
    )
    assert "ml.m5.large" in spec["SupportedRealtimeInferenceInstanceTypes"]
    meta = desc["CustomerMetadataProperties"]
    assert meta["commit"] == COMMIT and meta["pr"] == "42" and meta["repository"] == "acme/scl-delay"
    assert meta["training-job"] == good["job_name"] and meta["artifact-sha256"] == good["artifact_sha256"]
    assert len(meta["dataset-sha256"]) == 64
    assert meta["hp:num_round"] == "100" and float(meta["metric:test:pr_auc"]) == pytest.approx(
        good["final_metrics"]["test:pr_auc"], abs=1e-6
    )
    assert desc["MetadataProperties"]["CommitId"] == COMMIT
    statistics = desc["ModelMetrics"]["ModelQuality"]["Statistics"]
    bucket, key = statistics["S3Uri"].removeprefix("s3://").split("/", 1)
    assert key.startswith("training/pr-42/")  # under the PR's own prefix
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    import hashlib

    assert statistics["ContentDigest"] == f"sha256:{hashlib.sha256(body).hexdigest()}"
    doc = json.loads(body)
    assert doc["binary_classification_metrics"]["pr_auc"]["value"] == pytest.approx(
        good["final_metrics"]["test:pr_auc"], abs=1e-6
    )
    assert "baselines" in doc["scl_delay"]  # the whole metrics.json, baselines included


def test_failed_job_prints_failure_reason_and_exits_nonzero(tmp_path, s3, bucket):
    """A training file without the SCL columns: `train` writes output/failure and exits 2; the backend
    turns that into Failed + FailureReason as SageMaker does; training_job.py prints it and exits 1."""
    key = f"data/{unique('broken')}/flights.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n3,4\n")
    proc = run_script(
        "training_job.py",
        training_args(bucket, tmp_path, f"s3://{bucket}/{key}", COMMIT, [], unique("scl-grp")),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "training_result.json").read_text())
    assert result["status"] == "Failed"
    assert result["failure_reason"].startswith("AlgorithmError: DatasetError")
    assert result["failure_reason"] in proc.stdout
    assert "### Failure" in (tmp_path / "report.md").read_text()


MISSING = (
    "missing --image-uri (or $IMAGE_URI), --training-role-arn (or $SAGEMAKER_TRAINING_ROLE_ARN), --data (or "
    "$TRAINING_DATA_S3_URI), --output-s3 (or $ARTIFACT_S3_PREFIX)"
)


@pytest.mark.parametrize(
    "drop, replace, message",
    [
        (("--image-uri", "--training-role-arn", "--data", "--output-s3"), {}, MISSING),
        (("--training-role-arn",), {}, "missing --training-role-arn (or $SAGEMAKER_TRAINING_ROLE_ARN)"),
        (("--image-uri",), {}, "missing --image-uri (or $IMAGE_URI)"),
        (("--data",), {}, "missing --data (or $TRAINING_DATA_S3_URI)"),
        (
            (),
            {"--data": "/nonexistent/flights.csv"},
            "--data '/nonexistent/flights.csv' is neither an s3:// URI",
        ),
        ((), {"--output-s3": "bucket/out"}, "--output-s3 must look like s3://bucket/prefix"),
        ((), {"--training-role-arn": "my-role"}, "--training-role-arn must be an IAM role ARN"),
        ((), {"--instance-count": "2"}, "--instance-count 2: the container trains on one host"),
        ((), {"--job-name": "Scl-Delay-1"}, "must be lower-case"),
        ((), {"--model-package-group": "bad_group"}, "--model-package-group 'bad_group' is not a valid"),
        ((), {"--max-wait-minutes": "90"}, "--max-wait-minutes needs --spot"),
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
    args = training_args(bucket, tmp_path, "s3://b-ok/data/", COMMIT, [])
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
    args = training_args(bucket, tmp_path, "s3://b-ok/data/", COMMIT, [])
    assert training_job_main(args, env={}, clients_factory=NoAws()) == 2
    assert "no AWS region: pass --region or set AWS_REGION" in capsys.readouterr().err


def test_flags_fall_back_to_environment_variables(tmp_path, capsys):
    """The workflow's variables alone are enough to get past validation (the factory then stops it)."""
    env = {
        "AWS_REGION": REGION,
        "IMAGE_URI": IMAGE,
        "SAGEMAKER_TRAINING_ROLE_ARN": ROLE_ARN,
        "TRAINING_DATA_S3_URI": "s3://b-ok/data/",
        "ARTIFACT_S3_PREFIX": "s3://b-ok/out",
    }
    from scl_delay.aws import cli

    spec, _ = cli.training_spec_from_args(
        ["--hyperparameters", str(cli.Path(__file__).parents[2] / "hyperparameters.json")], env
    )
    assert (spec.image_uri, spec.role_arn, spec.data) == (IMAGE, ROLE_ARN, "s3://b-ok/data/")
    assert spec.prefix == f"s3://b-ok/out/commit-{spec.commit[:8]}"  # no PR: the commit's own prefix
    assert (spec.instance_type, spec.instance_count, spec.max_runtime_s) == (
        "ml.m5.large",
        1,
        3600,
    )  # spec defaults


def test_an_empty_flag_takes_the_specs_default(tmp_path):
    """``--instance-type "$UNSET"`` in a workflow gives an empty string: the spec's default applies."""
    from scl_delay.aws import cli

    args = ["--image-uri", IMAGE, "--training-role-arn", ROLE_ARN, "--data", "s3://b-ok/d/"]
    args += ["--output-s3", "s3://b-ok/out", "--instance-type", "", "--max-runtime-minutes", ""]
    args += ["--hyperparameters", str(cli.Path(__file__).parents[2] / "hyperparameters.json")]
    spec, _ = cli.training_spec_from_args(args, {"AWS_REGION": REGION})
    assert (spec.instance_type, spec.max_runtime_s) == ("ml.m5.large", 3600)


def test_spot_training_request_has_checkpoints_under_the_pr_prefix_and_a_max_wait():
    """Pure request check: moto's DescribeTrainingJob does not echo the spot fields."""
    from scl_delay.aws.training_job import TrainingJobSpec, create_request

    spec = TrainingJobSpec(
        region=REGION,
        image_uri=IMAGE,
        role_arn=ROLE_ARN,
        data="s3://b-ok/d/",
        output_s3="s3://b-ok/out",
        hyperparameters={},
        commit=COMMIT,
        pr_number="7",
        spot=True,
    )
    request = create_request(spec, "job-1", IMAGE, "s3://b-ok/d/", None)
    assert request["EnableManagedSpotTraining"] is True and request["EnableNetworkIsolation"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["CheckpointConfig"]["S3Uri"] == "s3://b-ok/out/pr-7/checkpoints/job-1/"
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://b-ok/out/pr-7"


def test_an_image_tag_missing_from_ecr_is_an_input_error(tmp_path, capsys, bucket, synthetic_csv):
    args = training_args(bucket, tmp_path, str(synthetic_csv), "ab" * 20, [])
    assert training_job_main(args) == 2
    assert "is not in ECR (push it first)" in capsys.readouterr().err
