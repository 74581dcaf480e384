"""Pure pieces of the registry (no moto): the CreateModelPackage request, the statistics document, the
metadata limits, and the PR comment's registry section against a live version."""

from __future__ import annotations

from scl_delay.aws import registry
from scl_delay.aws.report_pr import registry_section, render_report

METRICS = {"test:recall": 0.71, "test:precision": 0.45, "test:pr_auc": 0.62, "test:roc_auc": 0.74}


def test_statistics_document_uses_model_monitors_layout_and_keeps_the_whole_metrics_json():
    metrics_json = {
        "test": {
            "recall": 0.7,
            "precision": 0.4,
            "roc_auc": 0.73,
            "pr_auc": 0.6,
            "confusion_matrix": [[5, 2], [1, 3]],
        },
        "baselines": {"majority": {"recall": 0.0}},
    }
    doc = registry.model_quality_statistics(metrics_json)
    block = doc["binary_classification_metrics"]
    assert block["recall"] == {"value": 0.7, "standard_deviation": "NaN"}
    assert block["auc"]["value"] == 0.73 and block["pr_auc"]["value"] == 0.6
    assert block["confusion_matrix"] == {"0": {"0": 5, "1": 2}, "1": {"0": 1, "1": 3}}
    assert doc["scl_delay"]["baselines"] == {"majority": {"recall": 0.0}}


def test_metadata_fits_the_api_limits_and_names_identity_first():
    """CustomerMetadataProperties: at most 50 entries, values at most 256 characters (botocore's model)."""
    hps = {f"k{i:02d}": "v" * 300 for i in range(80)}
    meta = registry.customer_metadata(
        commit="c" * 40,
        training_job="job",
        artifact_sha256="a" * 64,
        dataset_sha256="d" * 64,
        pr="7",
        repo="acme/scl-delay",
        metrics=METRICS,
        hyperparameters=hps,
    )
    assert len(meta) <= 48 and all(len(v) <= 256 for v in meta.values())
    assert list(meta)[:6] == [
        "commit",
        "training-job",
        "artifact-sha256",
        "dataset-sha256",
        "pr",
        "repository",
    ]
    assert meta["metric:test:pr_auc"] == "0.620000"


def test_registration_request_is_pending_with_digest_and_statistics_digest():
    meta = registry.customer_metadata(
        commit="c" * 40,
        training_job="job",
        artifact_sha256="a" * 64,
        dataset_sha256=None,
        pr="7",
        repo="acme/scl-delay",
        metrics=METRICS,
        hyperparameters={"eta": "0.1"},
    )
    request = registry.registration_request(
        "scl-delay",
        image="r/i@sha256:" + "1" * 64,
        image_digest="sha256:" + "1" * 64,
        artifact="s3://b/m.tar.gz",
        metadata=meta,
        job_arn="arn:job",
        statistics_uri="s3://b/s.json",
        statistics_sha256="f" * 64,
        description="PR #7",
    )
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    container = request["InferenceSpecification"]["Containers"][0]
    assert container["ImageDigest"] == "sha256:" + "1" * 64
    statistics = request["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics == {
        "ContentType": "application/json",
        "S3Uri": "s3://b/s.json",
        "ContentDigest": "sha256:" + "f" * 64,
    }
    assert request["MetadataProperties"] == {
        "CommitId": "c" * 40,
        "Repository": "acme/scl-delay",
        "GeneratedBy": "arn:job",
    }


def test_pr_comment_compares_with_the_live_version_and_links_the_new_one():
    result = {
        "job_name": "scl-delay-pr7-cccccccc-1",
        "status": "Completed",
        "commit": "c" * 40,
        "pr_number": "7",
        "image": "r/i@sha256:" + "1" * 64,
        "final_metrics": METRICS,
        "hyperparameters": {"eta": "0.1"},
        "model_artifact": "s3://b/m.tar.gz",
        "model_package_arn": "arn:aws:sagemaker:us-east-1:1:model-package/scl-delay/4",
        "model_package_group": "scl-delay",
        "model_package_version": 4,
        "model_package_status": "PendingManualApproval",
        "artifact_sha256": "a" * 64,
    }
    live = {
        "version_label": "scl-delay v3",
        "training_job": "job-3",
        "endpoint_name": "scl-delay",
        "commit": "b" * 40,
        "metrics": {"test:pr_auc": 0.5},
    }
    report = render_report(result, live, {"eta": "0.03"}, "main", None, "us-east-1")
    assert "against the live model `job-3` (scl-delay v3" in report
    assert "| PR-AUC | 0.6200 | 0.5000 | +0.1200 ▲ |" in report
    section = "\n".join(registry_section(result, live, "us-east-1"))
    assert (
        "[scl-delay v4](https://us-east-1.console.aws.amazon.com/" in section
        and "PendingManualApproval" in section
    )
    assert "live: scl-delay v3 (commit `bbbbbbbb`)" in section
    assert registry_section({**result, "model_package_arn": None}, live, "us-east-1") == []
