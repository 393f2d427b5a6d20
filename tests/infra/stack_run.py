"""Run the whole Pulumi program (__main__.py) under mocks for one stack and write what it declared as JSON.

Run as `python -m tests.infra.stack_run <stack> <output.json> [key=value ...]` (values override the stack
file's): one process per stack keeps Pulumi's global state out of every other test. The mocks play the
engine and the provider: they return the inputs plus the outputs AWS would compute (ARNs, generated
names), shaped like the real ones so IAM linting sees real ARNs.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pulumi
import yaml
from pulumi.runtime import settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "lakehouse"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
# Stands in for what `pulumi config set --secret sourceApiToken` stores; never a real token.
TEST_TOKEN = "test-token-for-mocks"
TOKEN_KEY = f"{PROJECT}:sourceApiToken"

# Resource type -> (service, resource part of the ARN, with {name} and {id} filled in).
ARN_FORMATS = {
    "aws:kms/key:Key": ("kms", "key/{id}"),
    "aws:glue/catalogDatabase:CatalogDatabase": ("glue", "database/{name}"),
    "aws:glue/job:Job": ("glue", "job/{name}"),
    "aws:lambda/function:Function": ("lambda", "function:{name}"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:{name}"),
    "aws:sns/topic:Topic": ("sns", "{name}"),
    "aws:sfn/stateMachine:StateMachine": ("states", "stateMachine:{name}"),
    "aws:secretsmanager/secret:Secret": ("secretsmanager", "secret:{name}-AbCdEf"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/{name}"),
    "aws:scheduler/schedule:Schedule": ("scheduler", "schedule/default/{name}"),
    "aws:dynamodb/table:Table": ("dynamodb", "table/{name}"),
    "aws:athena/workgroup:Workgroup": ("athena", "workgroup/{name}"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch", "alarm:{name}"),
}


def stack_config(stack: str) -> dict[str, str]:
    """The stack's configuration as the Pulumi CLI passes it to the program (values as strings)."""
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    config = {key: _config_string(value) for key, value in document["config"].items()}
    config[TOKEN_KEY] = TEST_TOKEN
    return config


def _config_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[(args.typ, args.name)] = args.inputs
        suffix = hashlib.sha256(args.name.encode()).hexdigest()[:8]
        outputs = dict(args.inputs)
        physical_name = (
            args.inputs.get("name")
            or args.inputs.get("bucket")
            or (args.inputs.get("bucketPrefix") or args.inputs.get("namePrefix") or f"{args.name}-") + suffix
        )
        resource_id = f"{args.name}-{suffix}"
        outputs.setdefault("name", physical_name)
        if args.typ == "aws:s3/bucket:Bucket":
            outputs["bucket"] = physical_name
            outputs["arn"] = f"arn:{PARTITION}:s3:::{outputs['bucket']}"
            resource_id = outputs["bucket"]
        elif args.typ in ("aws:iam/role:Role", "aws:iam/policy:Policy"):
            kind = args.typ.rsplit(":", 1)[1].lower()
            path = args.inputs.get("path", "/")
            outputs["arn"] = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:{kind}{path}{physical_name}"
        elif args.typ == "aws:budgets/budget:Budget":
            # Budgets are global: no region in the ARN.
            outputs["arn"] = f"arn:{PARTITION}:budgets::{ACCOUNT_ID}:budget/{physical_name}"
        elif args.typ == "aws:cloudwatch/dashboard:Dashboard":
            # Dashboards are global too.
            dashboard = args.inputs["dashboardName"]
            outputs["arn"] = f"arn:{PARTITION}:cloudwatch::{ACCOUNT_ID}:dashboard/{dashboard}"
        if args.typ == "aws:kms/key:Key":
            outputs["keyId"] = resource_id
        if args.typ in ARN_FORMATS:
            service, resource = ARN_FORMATS[args.typ]
            arn_resource = resource.format(name=physical_name, id=resource_id)
            outputs["arn"] = f"arn:{PARTITION}:{service}:{self.region}:{ACCOUNT_ID}:{arn_resource}"
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        results = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/deployer",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT_ID,
            },
            "aws:index/getRegion:getRegion": {"region": self.region, "name": self.region, "id": self.region},
            "aws:index/getPartition:getPartition": {
                "partition": PARTITION,
                "dnsSuffix": "amazonaws.com",
                "id": PARTITION,
            },
        }
        return results.get(args.token, {}), []


def run(stack: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Run __main__.py for `stack` under mocks; return the resources, their options and the stack outputs."""
    config = {**stack_config(stack), **(overrides or {})}
    pulumi.runtime.set_all_config(config, secret_keys=[TOKEN_KEY])
    mocks = RecordingMocks(config["aws:region"])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    protected: dict[str, bool] = {}

    def record_options(args: pulumi.ResourceTransformationArgs) -> None:
        protected[f"{args.type_}::{args.name}"] = bool(args.opts.protect)

    pulumi.runtime.register_stack_transformation(record_options)
    result: dict[str, Any] = {}

    def program() -> pulumi.Output[None]:
        sys.path.insert(0, str(PROJECT_ROOT))
        runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")
        root = settings.get_root_resource()
        assert root is not None
        exports: dict[str, Any] = dict(getattr(root, "outputs", {}))
        return pulumi.Output.all(**exports).apply(lambda resolved: result.update(outputs=resolved))

    # pulumi.runtime.test runs the program and waits until every resource is registered.
    run_to_completion = cast(Callable[[], None], pulumi.runtime.test(program))  # type: ignore[no-untyped-call]
    run_to_completion()
    monitor = settings.SETTINGS.monitor
    resources = []
    for urn, registration in monitor.resources.items():
        qualified_type = urn.split("::")[2]
        types = qualified_type.split("$")
        name = urn.split("::")[-1]
        resources.append(
            {
                "urn": urn,
                "type": types[-1],
                "name": name,
                "parent_type": types[-2] if len(types) > 1 else None,
                "inputs": mocks.inputs.get((types[-1], name), {}),
                "outputs": registration.state,
                "protect": protected.get(f"{types[-1]}::{name}", False),
            }
        )
    return {"stack": stack, "resources": resources, "outputs": result.get("outputs", {})}


def _json_default(value: Any) -> Any:
    """Assets and archives as their paths, so the tests can open what Pulumi would upload."""
    for kind in ("path", "uri", "text"):
        if hasattr(value, kind):
            return {"$" + type(value).__name__: getattr(value, kind)}
    if hasattr(value, "assets"):
        return {"$" + type(value).__name__: value.assets}
    raise TypeError(f"cannot serialize {type(value).__name__}")


if __name__ == "__main__":
    stack_name, output_file = sys.argv[1], sys.argv[2]
    config_overrides = dict(argument.split("=", 1) for argument in sys.argv[3:])
    Path(output_file).write_text(
        json.dumps(run(stack_name, config_overrides), default=_json_default, indent=1), encoding="utf-8"
    )
