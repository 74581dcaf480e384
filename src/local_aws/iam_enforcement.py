"""IAM enforced in the moto server, close enough to AWS that a missing or wrong grant fails locally.

moto authorises requests once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served (``enforce``
sets it to 0 through ``/moto-api/reset-auth`` after creating an admin user). Its own evaluation
(moto/iam/access_control.py, 5.2.x) is basic; ``install`` (run inside the server process) tightens it.

What moto checks, and what this module changes:

- Action: checked. moto names an action after the signing name: CloudWatch becomes ``cloudwatch:``
  (moto says ``monitoring:``), API Gateway becomes ``apigateway:<HTTP method>`` as AWS authorises it
  (moto says ``apigateway:CreateRestApi``).
- Resource: moto computes one only for S3 (bucket/key), IAM, STS and SQS; every other request is checked
  against ``*``, which a statement scoped to an ARN never matches. Here SageMaker requests get the ARN of
  the resource they name (training job, model, endpoint config, endpoint, model package group or package,
  ``ResourceArn``; names lower-cased, as SageMaker writes them in ARNs) and API Gateway requests
  ``arn:aws:apigateway:<region>::<path>``, ECR requests their repository's ARN, CloudWatch Logs requests
  ``log-group:<name>:log-stream:<stream>`` or, without a stream, ``log-group:<name>:*``. **Lenient**:
  CloudWatch, Application Auto Scaling, SNS and the name-less calls (ECR login, List*) keep ``*``, which then
  matches any statement's Resource.
- Condition: moto evaluates only ``StringEquals`` on ``sts:ExternalId`` and passes every other condition.
  Here the String operators (Equals, NotEquals, Like, NotLike, and their ...IfExists forms) and ``Bool``
  are evaluated for the keys a request carries: ``sagemaker:ModelApprovalStatus``,
  ``sagemaker:NetworkIsolation`` (from ``EnableNetworkIsolation``), ``application-autoscaling:
  service-namespace``, ``s3:prefix`` and, for the PassRole check, ``iam:PassedToService``; an absent key
  fails a positive operator, as on AWS. **Lenient**: every other key (``cloudwatch:namespace``,
  ``aws:SourceAccount``, ``aws:RequestTag``...) passes.
- ``iam:PassRole``: moto never checks it. Here a request that hands a role to a service (SageMaker
  ``RoleArn``/``ExecutionRoleArn``, API Gateway integration ``credentials``) also needs ``iam:PassRole`` on
  that role with ``iam:PassedToService`` = the receiving service, as AWS checks it.
- Trust policies are not evaluated here (moto's check fails on ``Service`` principals): an identity allowed
  ``sts:AssumeRole`` may assume any role. tests/aws/test_infra.py evaluates the OIDC trust conditions of the
  template itself. **Lenient.**
- Explicit Deny wins over Allow (moto does this). A statement whose condition does not hold does not apply
  (moto made it an explicit deny).
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
import urllib.request

ADMIN_USER = "scl-delay-local-admin"
EVALUATED_KEYS = (
    "sagemaker:ModelApprovalStatus",
    "sagemaker:NetworkIsolation",
    "application-autoscaling:service-namespace",
    "s3:prefix",
    "iam:PassedToService",
)
# request fields that hand a role to a service: (service, field) -> the service principal that receives it
PASSED_ROLES = {
    ("sagemaker", "RoleArn"): "sagemaker.amazonaws.com",
    ("sagemaker", "ExecutionRoleArn"): "sagemaker.amazonaws.com",
    ("apigateway", "credentials"): "apigateway.amazonaws.com",
}
# SageMaker request parameter -> resource type in the ARN, in the order that names the authorised resource
SAGEMAKER_RESOURCES = (
    ("ModelPackageGroupName", "model-package-group"),
    ("TrainingJobName", "training-job"),
    ("EndpointName", "endpoint"),
    ("EndpointConfigName", "endpoint-config"),
    ("ModelName", "model"),
)


def enforce(url: str, region: str = "us-east-1") -> dict[str, str]:
    """Create the local admin user (while moto still lets every request through), then turn enforcement on.

    Returns the admin's credentials as AWS_* environment variables."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    iam = session.client("iam", endpoint_url=url)
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(
        UserName=ADMIN_USER,
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def role_credentials(session, role_arn: str, session_name: str, seconds: int = 3600) -> dict[str, str]:
    """AWS_* variables of an assumed role (what configure-aws-credentials exports in the workflows)."""
    creds = session.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


# --------------------------------------------------------------------------------- inside the moto server


def install() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError
    from moto.iam import access_control as ac

    if getattr(ac, "_scl_strict", False):
        return
    original_init = ac.IAMRequestBase.__init__

    def init(self, account_id, method, path, data, body, headers, action):
        original_init(self, account_id, method, path, data, body, headers, action)
        service = self._service
        name = self._action.split(":", 1)[1]
        if service == "monitoring":
            self._action = f"cloudwatch:{name}"
        elif service == "apigateway":
            self._action = f"apigateway:{method.upper()}"
            if not body:
                # moto hands API Gateway's request headers in as ``data`` for a GET, and signs them as the
                # payload when re-computing the signature: every GET would fail with SignatureDoesNotMatch
                self._data = b""
        self._scl_context = _context(service, path, data, body)

    def check_action_permitted(self, resource: str) -> None:
        if self._action == "sts:GetCallerIdentity":
            return
        permitted = False
        for policy in self._access_key.collect_policies():
            result = ac.IAMPolicy(policy).is_action_permitted(self._action, resource, None, self._scl_context)
            if result == ac.PermissionResult.DENIED:
                deny(self, resource, "with an explicit deny")
            permitted = permitted or result == ac.PermissionResult.PERMITTED
        if not permitted:
            deny(self, resource, "because no identity-based policy allows it")
        for role_arn, service in _passed_roles(self._service, self._body):
            check_pass_role(self, role_arn, service)

    def check_pass_role(request, role_arn: str, service: str) -> None:
        """The implicit iam:PassRole check AWS makes when a request hands a role to a service."""
        action, context = "iam:PassRole", {"iam:PassedToService": service}
        permitted = False
        for policy in request._access_key.collect_policies():
            result = ac.IAMPolicy(policy).is_action_permitted(action, role_arn, None, context)
            if result == ac.PermissionResult.DENIED:
                break
            permitted = permitted or result == ac.PermissionResult.PERMITTED
        else:
            if permitted:
                return
        raise AccessDeniedError(
            user_arn=request._access_key.arn, action=f"{action} on resource: {role_arn} (to {service})"
        )

    def deny(request, resource: str, why: str) -> None:
        """AWS's message names the resource and the reason; moto's names neither."""
        if isinstance(request, ac.S3IAMRequest):
            request._raise_access_denied()
        raise AccessDeniedError(
            user_arn=request._access_key.arn, action=f"{request._action} on resource: {resource} {why}"
        )

    def check_conditions(self, context) -> bool:
        return _conditions_hold(self._statement.get("Condition") or {}, context or {})

    def statement_verdict(self, action, resource="*", principal=None, context=None):
        """AWS: a statement applies when its action, resource and conditions all match; its Effect decides.
        moto answers DENIED for an Allow statement whose condition fails, which turns a second, conditioned
        Allow for the same action (two iam:PassRole statements, to two services) into an explicit deny."""
        statement = self._statement
        if "NotAction" in statement:
            concerned = not self._check_element_matches("NotAction", action)
        else:
            concerned = self._check_element_matches("Action", action)
        if not concerned or self.is_unknown_principal(statement.get("Principal")):
            return ac.PermissionResult.NEUTRAL
        if principal and not self._check_principal(principal):
            return ac.PermissionResult.NEUTRAL
        if not self._check_conditions(context):
            return ac.PermissionResult.NEUTRAL
        if statement.get("Resource") and not self._check_element_matches("Resource", resource):
            return ac.PermissionResult.NEUTRAL
        allow = statement["Effect"] == "Allow"
        return ac.PermissionResult.PERMITTED if allow else ac.PermissionResult.DENIED

    original_match = ac.IAMPolicyStatement._check_element_matches

    def check_element_matches(self, element, value):
        if element == "Resource" and value == "*":
            return True  # moto computed no resource for this service: lenient, see the module docstring
        return original_match(self, element, value)

    original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def authorize(self, resource: str = "*") -> None:
        if resource == "*":
            resource = _resource(self)
        original_authorize(self, resource)

    patches = (
        (ac.IAMRequestBase, "__init__", init),
        (ac.IAMRequestBase, "check_action_permitted", check_action_permitted),
        (ac.IAMPolicyStatement, "_check_conditions", check_conditions),
        (ac.IAMPolicyStatement, "is_action_permitted", statement_verdict),
        (ac.IAMPolicyStatement, "_check_element_matches", check_element_matches),
        (ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", authorize),
        (ac, "_scl_strict", True),
    )
    for owner, name, value in patches:
        setattr(owner, name, value)


def _json_body(body) -> dict:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _passed_roles(service: str, body) -> list[tuple[str, str]]:
    parsed = _json_body(body)
    return [
        (parsed[field], principal)
        for (svc, field), principal in PASSED_ROLES.items()
        if svc == service and isinstance(parsed.get(field), str) and parsed[field].startswith("arn:")
    ]


def _context(service: str, path: str, data, body) -> dict[str, str]:
    context: dict[str, str] = {}
    if service == "sagemaker":
        parsed = _json_body(body)
        status = parsed.get("ModelApprovalStatus")
        if status:
            context["sagemaker:ModelApprovalStatus"] = status
        if "EnableNetworkIsolation" in parsed:
            context["sagemaker:NetworkIsolation"] = str(bool(parsed["EnableNetworkIsolation"])).lower()
    elif service == "application-autoscaling":
        namespace = _json_body(body).get("ServiceNamespace")
        if namespace:
            context["application-autoscaling:service-namespace"] = namespace
    elif service == "s3":
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        if "prefix" in query:
            context["s3:prefix"] = query["prefix"][0]
    return context


def _resource(response) -> str:
    module = type(response).__module__
    region = getattr(response, "region", "us-east-1")
    partition = "aws"
    if module.startswith("moto.apigateway."):
        path = urllib.parse.urlsplit(response.uri).path
        return f"arn:{partition}:apigateway:{region}::{path}"
    if module.startswith("moto.sagemaker."):
        body = _json_body(response.body)
        account = response.current_account
        for key in ("ResourceArn", "ModelPackageArn"):
            if body.get(key):
                return body[key]
        package = body.get("ModelPackageName")
        if package:
            if package.startswith("arn:"):
                return package
            return f"arn:{partition}:sagemaker:{region}:{account}:model-package/{package.lower()}"
        for key, kind in SAGEMAKER_RESOURCES:
            if body.get(key):
                return f"arn:{partition}:sagemaker:{region}:{account}:{kind}/{body[key].lower()}"
    if module.startswith("moto.ecr."):
        name = _json_body(response.body).get("repositoryName")
        if name:
            return f"arn:{partition}:ecr:{region}:{response.current_account}:repository/{name}"
    if module.startswith("moto.logs."):
        body = _json_body(response.body)
        group, stream = body.get("logGroupName"), body.get("logStreamName")
        if group:
            base = f"arn:{partition}:logs:{region}:{response.current_account}:log-group:{group}"
            # a call on a stream is authorised on the stream's ARN, one on the group on "<group ARN>:*"
            return f"{base}:log-stream:{stream}" if stream else f"{base}:*"
    return "*"


def _conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        base = operator.removesuffix("IfExists")
        if_exists = base != operator
        for key, expected in pairs.items():
            if key not in EVALUATED_KEYS:
                continue  # lenient: see the module docstring
            wanted = expected if isinstance(expected, list) else [expected]
            actual = context.get(key)
            negated = "Not" in base
            if actual is None:
                if not (if_exists or negated):
                    return False
                continue
            if base in ("StringEquals", "StringNotEquals"):
                match = actual in wanted
            elif base in ("StringLike", "StringNotLike"):
                match = any(fnmatch.fnmatchcase(actual, w) for w in wanted)
            elif base == "Bool":
                match = actual.lower() in [str(w).lower() for w in wanted]
            else:
                continue
            if match == negated:
                return False
    return True
