"""The template's roles under IAM enforced by moto: each role can make the calls the pipeline makes, and is
refused what it must never do (issue 11: separate roles, PR code never writes what deploy trusts; issue 14
item 3: the PR role registers versions but never approves one, the deploy role approves).

Credentials: infra/scl-delay.yaml is applied to the session's moto server as its admin user
(the ``infra`` fixture of conftest, local_aws.stack.apply), then each test assumes a role with sts:AssumeRole
(local_aws.iam_enforcement.role_credentials), as configure-aws-credentials does with the OIDC token.

More lenient than AWS (local_aws.iam_enforcement): trust policies are not evaluated (test_infra.py does
that for the OIDC roles); only the condition keys sagemaker:ModelApprovalStatus, sagemaker:NetworkIsolation,
application-autoscaling:service-namespace, s3:prefix and (for the PassRole check) iam:PassedToService are
evaluated; CloudWatch, Application Auto Scaling and SNS requests (and name-less calls) are not matched
against Resource. moto answers AccessDenied as XML with HTTP 403 for every service (``is_access_denied``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from local_aws import iam_enforcement

from .aws_helpers import ACCOUNT, REGION

ENDPOINT = "scl-delay"


def as_role(infra, output: str) -> boto3.session.Session:
    creds = iam_enforcement.role_credentials(boto3.session.Session(region_name=REGION), infra[output], "test")
    return boto3.session.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


def is_access_denied(e: ClientError) -> bool:
    """AWS answers AccessDenied(Exception) in the service's protocol; moto answers every service with an XML
    AccessDenied body and HTTP 403, which botocore's JSON parsers report as code "403"."""
    return e.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException") or (
        e.response["Error"]["Code"] == "403" and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    )


def denied(call, *args, **kwargs) -> bool:
    try:
        call(*args, **kwargs)
    except ClientError as e:
        if is_access_denied(e):
            return True
        raise
    return False


def allowed(call, *args, **kwargs) -> bool:
    """Authorised: the call went through, or failed for a reason other than access."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return not is_access_denied(e)
    return True


def gateway_spec(role_arn: str, **overrides) -> SimpleNamespace:
    """The fields of deploy's spec that gateway.py reads."""
    fields = {
        "region": REGION,
        "endpoint_name": ENDPOINT,
        "api_name": "scl-delay",
        "stage": "prod",
        "apigw_role_arn": role_arn,
        "access_log_arn": None,
        "rate_limit": 20.0,
        "burst_limit": 40,
    }
    return SimpleNamespace(**{**fields, **overrides})


def _package(sm, status: str | None) -> dict:
    kwargs = {
        "ModelPackageGroupName": ENDPOINT,
        "ModelPackageDescription": "test",
        "InferenceSpecification": {
            "Containers": [
                {"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay@sha256:" + "0" * 64}
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if status:
        kwargs["ModelApprovalStatus"] = status
    return sm.create_model_package(**kwargs)


def test_admin_session_is_enforced_too(infra):
    """Enforcement is on: unknown keys are refused, so a passing role test means the policy allowed it."""
    fake = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="no-such-key", aws_secret_access_key="x"
    )
    with pytest.raises(ClientError) as e:
        fake.list_endpoints()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "InvalidClientTokenId" in str(e.value) or "security token" in str(e.value)


def test_pr_role_registers_pending_versions_but_never_approves(infra):
    pr = as_role(infra, "PrTrainingRoleArn").client("sagemaker")
    deploy = as_role(infra, "DeployRoleArn").client("sagemaker")
    arn = _package(pr, "PendingManualApproval")["ModelPackageArn"]
    assert denied(_package, pr, "Approved"), "registering as Approved would skip the approver"
    assert denied(_package, pr, None), "without an explicit status the condition key is absent: refused"
    for status in ("Approved", "Rejected", "PendingManualApproval"):
        assert denied(pr.update_model_package, ModelPackageArn=arn, ModelApprovalStatus=status)
    assert pr.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"
    # the deploy role approves or rejects, and cannot put a version back to pending
    assert denied(
        deploy.update_model_package, ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval"
    )
    deploy.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="merge"
    )
    assert deploy.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    assert denied(deploy.create_model_package, ModelPackageGroupName=ENDPOINT), "deploy never registers"


def test_registry_rights_stop_at_the_endpoints_group(infra):
    admin = boto3.client("sagemaker", region_name=REGION)
    admin.create_model_package_group(ModelPackageGroupName="someone-elses-models")
    pr = as_role(infra, "PrTrainingRoleArn").client("sagemaker")
    assert denied(
        pr.create_model_package,
        ModelPackageGroupName="someone-elses-models",
        ModelApprovalStatus="PendingManualApproval",
    )


def test_s3_prefixes_separate_pull_request_code_from_what_deploy_trusts(infra):
    bucket = infra["ArtifactBucketName"]
    pr = as_role(infra, "PrTrainingRoleArn").client("s3")
    training = as_role(infra, "TrainingExecutionRoleArn").client("s3")
    serving = as_role(infra, "ServingExecutionRoleArn").client("s3")
    deploy = as_role(infra, "DeployRoleArn").client("s3")
    put = {"Body": b"x"}
    assert allowed(pr.put_object, Bucket=bucket, Key="training/pr-7/input/abc/data.csv", **put)
    assert denied(pr.put_object, Bucket=bucket, Key="training/pr-7/job/output/model.tar.gz", **put)
    assert denied(pr.put_object, Bucket=bucket, Key=f"deploy/{ENDPOINT}/v1/model.tar.gz", **put)
    assert allowed(training.put_object, Bucket=bucket, Key="training/pr-7/job/output/model.tar.gz", **put)
    assert denied(training.put_object, Bucket=bucket, Key=f"deploy/{ENDPOINT}/v1/model.tar.gz", **put)
    assert denied(training.put_object, Bucket=bucket, Key="data/flights.csv", **put), (
        "training data is read-only"
    )
    assert allowed(
        deploy.copy_object,
        Bucket=bucket,
        Key=f"deploy/{ENDPOINT}/v1/model.tar.gz",
        CopySource={"Bucket": bucket, "Key": "training/pr-7/job/output/model.tar.gz"},
    )
    assert allowed(serving.get_object, Bucket=bucket, Key=f"deploy/{ENDPOINT}/v1/model.tar.gz")
    assert denied(serving.get_object, Bucket=bucket, Key="training/pr-7/job/output/model.tar.gz")
    assert denied(serving.put_object, Bucket=bucket, Key=f"deploy/{ENDPOINT}/v1/model.tar.gz", **put)


def test_sagemaker_resources_are_scoped_to_the_endpoint_and_project_names(infra):
    deploy = as_role(infra, "DeployRoleArn").client("sagemaker")
    pr = as_role(infra, "PrTrainingRoleArn").client("sagemaker")
    # authorised: the call reaches SageMaker and fails only because nothing exists
    assert allowed(deploy.describe_endpoint, EndpointName=ENDPOINT)
    assert denied(deploy.describe_endpoint, EndpointName="another-team-endpoint")
    assert allowed(deploy.describe_endpoint_config, EndpointConfigName="any-name-autoscaling-reads")
    assert denied(deploy.delete_endpoint_config, EndpointConfigName="another-team-config")
    assert allowed(pr.describe_training_job, TrainingJobName="scl-delay-pr7-00000000-20260101-000000")
    assert denied(pr.describe_training_job, TrainingJobName="other-job")
    assert denied(pr.create_endpoint, EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT), "PRs never deploy"
    assert denied(pr.delete_endpoint, EndpointName=ENDPOINT)


def test_autoscaling_and_alarms_for_the_deploy_role_only(infra):
    deploy = as_role(infra, "DeployRoleArn")
    pr = as_role(infra, "PrTrainingRoleArn")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{ENDPOINT}/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 2,
    }
    assert allowed(deploy.client("application-autoscaling").register_scalable_target, **target)
    ecs = {
        **target,
        "ServiceNamespace": "ecs",
        "ResourceId": "service/c/s",
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    assert denied(deploy.client("application-autoscaling").register_scalable_target, **ecs)
    assert allowed(
        deploy.client("application-autoscaling").describe_scalable_targets, ServiceNamespace="sagemaker"
    )
    assert denied(pr.client("application-autoscaling").register_scalable_target, **target)
    alarm = {
        "AlarmName": f"{ENDPOINT}-5xx",
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    assert allowed(deploy.client("cloudwatch").put_metric_alarm, **alarm)
    assert allowed(deploy.client("cloudwatch").describe_alarms, AlarmNames=[alarm["AlarmName"]])
    assert denied(pr.client("cloudwatch").put_metric_alarm, **alarm)


def test_deploy_role_builds_the_gateway_and_the_pr_role_cannot(infra):
    """gateway.ensure_gateway (every API Gateway call deploy makes) under the deploy role: apigateway:<verb>
    on arn:aws:apigateway:<region>::/restapis..., /apikeys..., /usageplans..., /tags/..."""
    from scl_delay.aws import gateway

    spec = gateway_spec(infra["ApiGatewayInvokeRoleArn"], api_name="scl-delay-iam-test")
    deploy_gw = as_role(infra, "DeployRoleArn").client("apigateway")
    actions: list[str] = []
    api = gateway.ensure_gateway(deploy_gw, spec, actions)
    assert actions and api["api_id"]
    assert gateway.delete_gateway(deploy_gw, spec)
    pr_gw = as_role(infra, "PrTrainingRoleArn").client("apigateway")
    assert denied(pr_gw.create_rest_api, name="pr-made-api")


def test_only_the_gateway_invoke_role_may_invoke_the_endpoint(infra):
    """The invoke role's one permission, read back from moto's IAM as the template put it there."""
    iam = boto3.client("iam", region_name=REGION)
    doc = iam.get_role_policy(RoleName="scl-delay-apigateway-invoke", PolicyName="invoke-endpoint")[
        "PolicyDocument"
    ]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert doc["Statement"] == [
        {
            "Sid": "InvokeOnlyTheScoringEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
        }
    ]


def _denied_message(call, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert is_access_denied(e.value), e.value
    return str(e.value)


def _training_job(role_arn: str, isolated: bool) -> dict:
    return {
        "TrainingJobName": f"scl-delay-pr7-{'i' if isolated else 'n'}-{role_arn.rsplit('-', 1)[-1]}",
        "AlgorithmSpecification": {
            "TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay:x",
            "TrainingInputMode": "File",
        },
        "RoleArn": role_arn,
        "OutputDataConfig": {"S3OutputPath": "s3://scl-delay-123456789012-us-east-1/training/pr-7"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "EnableNetworkIsolation": isolated,
    }


def test_pr_jobs_run_network_isolated_and_as_the_training_role_only(infra):
    """Issue 11 defect 6: pull-request code runs without network, and never as the serving role (which reads
    what is deployed). moto checks neither the NetworkIsolation condition nor iam:PassRole by itself."""
    pr = as_role(infra, "PrTrainingRoleArn").client("sagemaker")
    said = _denied_message(pr.create_training_job, **_training_job(infra["TrainingExecutionRoleArn"], False))
    assert "sagemaker:CreateTrainingJob" in said
    said = _denied_message(pr.create_training_job, **_training_job(infra["ServingExecutionRoleArn"], True))
    assert f"iam:PassRole on resource: {infra['ServingExecutionRoleArn']}" in said


def test_deploy_creates_isolated_models_with_the_serving_role_only(infra):
    deploy = as_role(infra, "DeployRoleArn").client("sagemaker")
    container = {"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay@sha256:" + "0" * 64}
    model = {"ModelName": f"{ENDPOINT}-iam-test", "PrimaryContainer": container}
    said = _denied_message(
        deploy.create_model,
        **model,
        ExecutionRoleArn=infra["TrainingExecutionRoleArn"],
        EnableNetworkIsolation=True,
    )
    assert f"iam:PassRole on resource: {infra['TrainingExecutionRoleArn']}" in said
    said = _denied_message(
        deploy.create_model,
        **model,
        ExecutionRoleArn=infra["ServingExecutionRoleArn"],
        EnableNetworkIsolation=False,
    )
    assert "sagemaker:CreateModel" in said
    deploy.create_model(
        **model, ExecutionRoleArn=infra["ServingExecutionRoleArn"], EnableNetworkIsolation=True
    )
    deploy.delete_model(ModelName=model["ModelName"])


def test_list_models_filters_by_name_as_aws_does(infra):
    """moto 5.2 ignores ListModels' NameContains (local_aws.moto_fixes restores it): unfiltered, the deploy
    role was asked to ListTags other endpoints' models, which AWS would never have listed."""
    admin = boto3.client("sagemaker", region_name=REGION)
    container = {"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/scl-delay:x"}
    role = infra["ServingExecutionRoleArn"]
    names = ["other-team-model-x1", f"{ENDPOINT}-listed-x1"]
    for name in names:
        admin.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role)
    try:
        listed = [m["ModelName"] for m in admin.list_models(NameContains=f"{ENDPOINT}-listed")["Models"]]
        assert listed == [names[1]]
    finally:
        for name in names:
            admin.delete_model(ModelName=name)


def test_logs_and_ecr_are_scoped_to_the_jobs_log_and_the_projects_repository(infra):
    """Issue 11 item 11: DescribeLogStreams is granted on the log group's ARN with ":*", GetLogEvents on the
    project's streams; image reads on the project's repository only."""
    pr = as_role(infra, "PrTrainingRoleArn")
    logs = pr.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    assert allowed(logs.describe_log_streams, logGroupName=group, logStreamNamePrefix="scl-delay-pr7")
    assert denied(logs.describe_log_streams, logGroupName="/aws/sagemaker/Endpoints/scl-delay")
    assert allowed(logs.get_log_events, logGroupName=group, logStreamName="scl-delay-pr7-x/algo-1-1")
    assert denied(logs.get_log_events, logGroupName=group, logStreamName="another-team-job/algo-1-1")
    ecr = as_role(infra, "DeployRoleArn").client("ecr")
    assert allowed(ecr.describe_images, repositoryName="scl-delay")
    assert denied(ecr.describe_images, repositoryName="another-team-images")
