"""The resources each stack declares, how they nest in components, their tags and the stack outputs."""

from __future__ import annotations

import importlib
import inspect
from collections import Counter

import pytest

from etl.registry import datasets, gold_tables
from tests.infra.stack_run import PROJECT_ROOT
from tests.infra.stacks import Resource, StackRun

# Resource type -> how many each stack declares.
COMMON = {
    "lakehouse:medallion_layer:MedallionLayer": 3,
    "lakehouse:pipeline:Pipeline": 1,
    "lakehouse:ingest_function:IngestFunction": 1,
    "lakehouse:spark_job:SparkJob": 3,  # Silver, Gold, Audit
    "lakehouse:alerts:Alerts": 1,
    "lakehouse:orchestrator:Orchestrator": 1,
    "aws:kms/key:Key": 6,
    "aws:kms/alias:Alias": 6,
    "aws:glue/catalogDatabase:CatalogDatabase": 3,
    "aws:glue/job:Job": 3,
    "aws:lambda/function:Function": 1,
    "aws:cloudwatch/logGroup:LogGroup": 8,
    "aws:s3/bucketObjectv2:BucketObjectv2": 4,
    "aws:secretsmanager/secret:Secret": 1,
    "aws:secretsmanager/secretVersion:SecretVersion": 1,
    "aws:sns/topic:Topic": 1,
    "aws:sns/topicPolicy:TopicPolicy": 1,
    "aws:cloudwatch/eventRule:EventRule": 1,
    "aws:cloudwatch/eventTarget:EventTarget": 1,
    "aws:sfn/stateMachine:StateMachine": 1,
    "aws:dynamodb/table:Table": 1,  # the run lock
    "lakehouse:analytics:QueryLayer": 1,
    "aws:athena/workgroup:Workgroup": 1,
    # One per Gold table and one quarantine report per dataset.
    "aws:athena/namedQuery:NamedQuery": len(gold_tables()) + len(datasets()),
    "aws:iam/policy:Policy": 1,  # the analysts'
    "lakehouse:budget:CostBudget": 1,
    "aws:budgets/budget:Budget": 1,
    "lakehouse:monitoring:Monitoring": 1,
    # Per step: failed runs and duration; the freshness alarm; per dataset: the quarantine rate.
    "aws:cloudwatch/metricAlarm:MetricAlarm": 2 * 4 + 1 + len(datasets()),
    "aws:cloudwatch/dashboard:Dashboard": 1,
}
BUCKET_SETTINGS = (
    "lakehouse:hardened_bucket:HardenedBucket",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketPolicy:BucketPolicy",
)
EXPECTED_INVENTORY = {
    # Five buckets (three layers, the artifacts, the query results), five roles, nothing scheduled, no e-mail.
    "dev": {
        **COMMON,
        **dict.fromkeys(BUCKET_SETTINGS, 5),
        "aws:iam/role:Role": 5,
        "aws:iam/rolePolicy:RolePolicy": 5,
    },
    # Plus the access-log bucket (and logging on the other four), the scheduler and its role, the e-mail.
    "prod": {
        **COMMON,
        **dict.fromkeys(BUCKET_SETTINGS, 6),
        "lakehouse:access_logs:AccessLogs": 1,
        "aws:s3/bucketLogging:BucketLogging": 5,
        "aws:iam/role:Role": 6,
        "aws:iam/rolePolicy:RolePolicy": 6,
        "aws:scheduler/schedule:Schedule": 1,
        "aws:sns/topicSubscription:TopicSubscription": 1,
    },
}


def test_each_stack_declares_the_expected_resources(stack: StackRun) -> None:
    inventory = Counter(r.type for r in stack.resources)
    assert dict(inventory) == EXPECTED_INVENTORY[stack.stack]


def test_every_resource_belongs_to_a_component(stack: StackRun) -> None:
    stack_level = sorted(r.name for r in stack.resources if r.parent_type == "pulumi:pulumi:Stack")
    # Only components sit at the top of the stack; every cloud resource is a component's child.
    assert all(r.is_component for r in stack.resources if r.parent_type == "pulumi:pulumi:Stack"), stack_level
    expected_top = ["analytics", "bronze", "budget", "gold", "medallion", "silver"] + (
        ["access-logs"] if stack.stack == "prod" else []
    )
    assert stack_level == sorted(expected_top)


def test_children_are_named_after_their_component(stack: StackRun) -> None:
    for resource in stack.resources:
        if resource.parent_type and resource.parent_type != "pulumi:pulumi:Stack":
            parents = [
                p
                for p in stack.resources
                if p.type == resource.parent_type and resource.name.startswith(p.name)
            ]
            assert parents, f"{resource.type} {resource.name} is not named after its {resource.parent_type}"


def _accepts_tags(type_token: str) -> bool:
    """Whether the provider's resource class takes `tags`, from its typed constructor."""
    package, module_path, class_name = type_token.split(":")
    module = module_path.split("/")[0]
    python_module = importlib.import_module(f"pulumi_{package}.{'lambda_' if module == 'lambda' else module}")
    constructor = getattr(python_module, class_name)._internal_init
    return "tags" in inspect.signature(constructor).parameters


def _expected_layer(resource: Resource, stack: StackRun) -> str:
    for layer in ("bronze", "silver", "gold"):
        if resource.name.startswith(f"{layer}-"):
            return layer
    if resource.name.startswith("analytics-"):
        return "analytics"
    return "logs" if resource.name.startswith("access-logs-") else "pipeline"


def test_every_taggable_resource_carries_project_stack_and_layer(stack: StackRun) -> None:
    taggable = [r for r in stack.resources if not r.is_component and _accepts_tags(r.type)]
    assert len(taggable) > 30
    for resource in taggable:
        assert resource.inputs.get("tags") == {
            "project": "lakehouse",
            "stack": stack.stack,
            "layer": _expected_layer(resource, stack),
        }, f"{resource.type} {resource.name}"


def test_the_tag_check_knows_taggable_from_untaggable_types() -> None:
    assert _accepts_tags("aws:s3/bucket:Bucket")
    assert _accepts_tags("aws:lambda/function:Function")
    assert not _accepts_tags("aws:s3/bucketPolicy:BucketPolicy")


def test_the_stack_exports_what_operators_look_up(stack: StackRun) -> None:
    outputs = stack.outputs
    prefix = f"lakehouse-{stack.stack}"
    assert outputs["stateMachineArn"].endswith(f":stateMachine:{prefix}-medallion")
    buckets = {r.outputs["bucket"] for r in stack.of_type("aws:s3/bucket:Bucket")}
    assert set(outputs["bucketNames"].values()) == buckets
    expected_buckets = {"bronze", "silver", "gold", "artifacts", "athenaResults"} | (
        {"accessLogs"} if stack.stack == "prod" else set()
    )
    assert set(outputs["bucketNames"]) == expected_buckets
    assert outputs["databaseNames"] == {
        layer: f"lakehouse_{stack.stack}_{layer}" for layer in ("bronze", "silver", "gold")
    }
    assert outputs["jobNames"] == {
        "Silver": f"{prefix}-silver",
        "Gold": f"{prefix}-gold",
        "Audit": f"{prefix}-audit",
    }
    assert outputs["functionName"] == f"{prefix}-bronze"
    assert outputs["alertTopicArn"] == stack.of_type("aws:sns/topic:Topic")[0].outputs["arn"]
    assert (
        outputs["sourceTokenSecretArn"] == stack.of_type("aws:secretsmanager/secret:Secret")[0].outputs["arn"]
    )


@pytest.mark.parametrize("layer", ["bronze", "silver", "gold"])
def test_each_layer_has_a_database_located_in_its_own_bucket(stack: StackRun, layer: str) -> None:
    database = stack.one("aws:glue/catalogDatabase:CatalogDatabase", f"{layer}-database")
    bucket = stack.outputs["bucketNames"][layer]
    assert database.inputs["name"] == f"lakehouse_{stack.stack}_{layer}"
    assert database.inputs["locationUri"] == f"s3://{bucket}/warehouse"


def test_the_infrastructure_creates_no_tables(stack: StackRun) -> None:
    # The jobs create their Iceberg tables from etl/tables.py; a second definition here would drift.
    assert not stack.of_type("aws:glue/catalogTable:CatalogTable")


def test_the_deploy_guide_lists_every_output(stack: StackRun) -> None:
    guide = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in stack.outputs if f"| `{name}` |" not in guide] == []
