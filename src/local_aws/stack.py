"""infra/scl-delay.yaml applied to moto, as ``aws cloudformation deploy`` would apply it to an account.

moto's own CloudFormation does not know several of the template's resource types (the model package group,
API Gateway's account settings), so this module resolves the template itself (``render``: parameters,
conditions and the intrinsic functions the template uses) and creates each resource through the service's
API (``apply``). The IAM documents that reach moto are therefore the template's, byte for byte after
substitution: the template stays the single source of every policy.

    rendered = render(TEMPLATE, {"GitHubOwner": "acme", "GitHubRepo": "scl-delay"}, account, region)
    outputs = apply(rendered, session)      # admin session; returns the template's Outputs
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "scl-delay.yaml"
NO_VALUE = object()


@dataclass
class Rendered:
    parameters: dict[str, str]
    resources: dict[str, dict] = field(default_factory=dict)  # logical id -> {Type, Properties, Metadata}
    outputs: dict[str, str] = field(default_factory=dict)

    def roles(self) -> dict[str, dict]:
        return {k: r for k, r in self.resources.items() if r["Type"] == "AWS::IAM::Role"}

    def role_named(self, suffix: str) -> dict:
        """The role resource whose RoleName ends with ``suffix`` (e.g. ``github-deploy``)."""
        return next(r for r in self.roles().values() if r["Properties"]["RoleName"].endswith(suffix))


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt a.b, ...) as their long forms.

    (cfn-lint's decoder does the same but takes seconds to import; cfn-lint itself runs in test_infra.)"""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


def load(path: Path = TEMPLATE) -> dict:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader subclass: safe


def render(template: dict | Path, parameters: dict[str, str], account: str, region: str) -> Rendered:
    """Resolve parameters, conditions and intrinsics; resources whose Condition is false are left out."""
    if isinstance(template, Path):
        template = load(template)
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    unknown = set(parameters) - set(params)
    if unknown:
        raise ValueError(f"unknown template parameters: {sorted(unknown)}")
    params.update(parameters)
    missing = [k for k, v in params.items() if v == "" and "Default" not in template["Parameters"][k]]
    if missing:
        raise ValueError(f"template parameters without a value: {missing}")
    partition = (
        "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    )
    pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition}
    out = Rendered(params)
    resolver = _Resolver(template, {**params, **pseudo}, out)
    for name, spec in template.get("Conditions", {}).items():
        resolver.conditions[name] = bool(resolver.value(spec))
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.value(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not resolver.value(assertion["Assert"]):
                raise ValueError(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")
    resolver.names_and_arns()
    for name, resource in template["Resources"].items():
        if "Condition" in resource and not resolver.conditions[resource["Condition"]]:
            continue
        out.resources[name] = {
            "Type": resource["Type"],
            "Properties": resolver.value(resource.get("Properties", {})),
            "Metadata": resource.get("Metadata", {}),
        }
    for name, spec in template.get("Outputs", {}).items():
        out.outputs[name] = resolver.value(spec["Value"])
    return out


class _Resolver:
    """The intrinsic functions infra/scl-delay.yaml uses; anything else is an error, not a silent pass."""

    def __init__(self, template: dict, refs: dict[str, str], out: Rendered):
        self.template, self.refs, self.out = template, dict(refs), out
        self.conditions: dict[str, bool] = {}
        self.attrs: dict[str, str] = {}

    def names_and_arns(self) -> None:
        """Ref and Fn::GetAtt values of the resources, as the real services name them."""
        p, region, account = (
            self.refs["AWS::Partition"],
            self.refs["AWS::Region"],
            self.refs["AWS::AccountId"],
        )
        for name, resource in self.template["Resources"].items():
            props = resource.get("Properties", {})
            kind = resource["Type"]
            if kind == "AWS::IAM::Role":
                role = self.value(props["RoleName"])
                self.refs[name] = role
                self.attrs[f"{name}.Arn"] = f"arn:{p}:iam::{account}:role/{role}"
            elif kind == "AWS::S3::Bucket":
                bucket = self.value(props["BucketName"])
                self.refs[name] = bucket
                self.attrs[f"{name}.Arn"] = f"arn:{p}:s3:::{bucket}"
            elif kind == "AWS::ECR::Repository":
                repo = self.value(props["RepositoryName"])
                self.refs[name] = repo
                self.attrs[f"{name}.Arn"] = f"arn:{p}:ecr:{region}:{account}:repository/{repo}"
                self.attrs[f"{name}.RepositoryUri"] = f"{account}.dkr.ecr.{region}.amazonaws.com/{repo}"
            elif kind == "AWS::SNS::Topic":
                self.refs[name] = f"arn:{p}:sns:{region}:{account}:{self.value(props['TopicName'])}"
            elif kind == "AWS::Logs::LogGroup":
                group = self.value(props["LogGroupName"])
                self.refs[name] = group
                self.attrs[f"{name}.Arn"] = f"arn:{p}:logs:{region}:{account}:log-group:{group}:*"
            elif kind == "AWS::SageMaker::ModelPackageGroup":
                group = self.value(props["ModelPackageGroupName"])
                arn = f"arn:{p}:sagemaker:{region}:{account}:model-package-group/{group.lower()}"
                self.refs[name] = arn
                self.attrs[f"{name}.ModelPackageGroupArn"] = arn

    def value(self, node):
        if isinstance(node, list):
            items = [self.value(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = {
                "Ref": self._ref,
                "Fn::Sub": self._sub,
                "Fn::GetAtt": self._getatt,
                "Fn::If": self._if,
                "Fn::Equals": lambda a: self.value(a[0]) == self.value(a[1]),
                "Fn::Not": lambda a: not self.value(a[0]),
                "Fn::Join": lambda a: self.value(a[0]).join(self.value(a[1])),
                "Fn::Split": lambda a: self.value(a[1]).split(self.value(a[0])),
                "Condition": lambda a: self.conditions[a],
            }.get(key)
            if handler is not None:
                return handler(arg)
            if key.startswith("Fn::"):
                raise ValueError(f"intrinsic {key} is not supported by local_aws.stack")
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        return self.refs[name]

    def _getatt(self, arg) -> str:
        key = ".".join(arg) if isinstance(arg, list) else arg
        return self.attrs[key]

    def _if(self, arg):
        return self.value(arg[1] if self.conditions[arg[0]] else arg[2])

    def _sub(self, arg) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))

        def one(m: re.Match) -> str:
            name = m.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name:
                return self.attrs[name]
            return str(self.refs[name])

        return re.sub(r"\$\{([^}!]+)\}", one, text)


# ------------------------------------------------------------------------------------------------ apply


def apply(rendered: Rendered, session) -> dict[str, str]:
    """Create the rendered resources in moto through ``session`` (an identity allowed to); idempotent."""
    iam = session.client("iam")
    roles = rendered.roles()
    for resource in rendered.resources.values():
        _create(resource, session)
    for resource in roles.values():
        _create_role(iam, resource["Properties"])
    return dict(rendered.outputs)


def _create(resource: dict, session) -> None:
    props, kind = resource["Properties"], resource["Type"]
    if kind == "AWS::IAM::OIDCProvider":
        iam = session.client("iam")
        have = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
        if not any(a.endswith("/token.actions.githubusercontent.com") for a in have):
            iam.create_open_id_connect_provider(
                Url=props["Url"], ClientIDList=props["ClientIdList"], ThumbprintList=["0" * 40]
            )
    elif kind == "AWS::S3::Bucket":
        s3 = session.client("s3")
        if props["BucketName"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=props["BucketName"])
            s3.put_bucket_versioning(
                Bucket=props["BucketName"], VersioningConfiguration={"Status": "Enabled"}
            )
    elif kind == "AWS::ECR::Repository":
        ecr = session.client("ecr")
        try:
            ecr.create_repository(
                repositoryName=props["RepositoryName"], imageTagMutability=props["ImageTagMutability"]
            )
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass
        ecr.put_lifecycle_policy(
            repositoryName=props["RepositoryName"],
            lifecyclePolicyText=props["LifecyclePolicy"]["LifecyclePolicyText"],
        )
    elif kind == "AWS::SageMaker::ModelPackageGroup":
        sm = session.client("sagemaker")
        names = [
            g["ModelPackageGroupName"] for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
        ]
        if props["ModelPackageGroupName"] not in names:
            sm.create_model_package_group(
                ModelPackageGroupName=props["ModelPackageGroupName"],
                ModelPackageGroupDescription=props.get("ModelPackageGroupDescription", ""),
            )
    elif kind == "AWS::SNS::Topic":
        session.client("sns").create_topic(Name=props["TopicName"])
    elif kind == "AWS::Logs::LogGroup":
        logs = session.client("logs")
        if not logs.describe_log_groups(logGroupNamePrefix=props["LogGroupName"])["logGroups"]:
            logs.create_log_group(logGroupName=props["LogGroupName"])
    # AWS::IAM::Role: apply() creates roles last; the S3 bucket policy, the SNS topic policy and
    # subscription and API Gateway's account setting have no effect on what moto authorises: left out.


def _create_role(iam, props: dict) -> None:
    name = props["RoleName"]
    trust = json.dumps(props["AssumeRolePolicyDocument"])
    try:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=trust,
            Description=props.get("Description", "")[:1000],
            MaxSessionDuration=int(props.get("MaxSessionDuration", 3600)),
        )
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    for policy in props.get("Policies", []):
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
