"""Every policy is parliament-clean and least-privilege: listed actions, on this stack's resources only."""

from __future__ import annotations

import json
from typing import Any

import parliament
import pytest
from parliament import analyze_policy_string

from etl.registry import gold_tables, silver_tables
from tests.infra.stacks import StackRun, as_list, statements

SILVER_TABLES = silver_tables()
GOLD_TABLES = gold_tables()

ACCOUNT = "123456789012"
SERVICES_BY_ROLE = {
    "medallion-bronze-role": "lambda.amazonaws.com",
    "medallion-silver-role": "glue.amazonaws.com",
    "medallion-gold-role": "glue.amazonaws.com",
    "medallion-audit-role": "glue.amazonaws.com",
    "medallion-orchestrator-role": "states.amazonaws.com",
    "medallion-orchestrator-scheduler-role": "scheduler.amazonaws.com",
}


def _resource_types(action: str) -> list[str]:
    """The resource types an IAM action can be scoped to, from parliament's copy of the IAM reference."""
    prefix, name = action.split(":")
    for service in parliament.iam_definition:
        if service["prefix"] == prefix:
            for privilege in service["privileges"]:
                if privilege["privilege"].lower() == name.lower():
                    return [t["resource_type"] for t in privilege["resource_types"] if t["resource_type"]]
    raise AssertionError(f"unknown action {action}")


def _role_policy(stack: StackRun, role: str) -> list[dict[str, Any]]:
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", role.replace("-role", "-policy"))
    return statements(json.loads(policy.inputs["policy"]))


def _granted(stack: StackRun, role: str) -> dict[str, set[str]]:
    """Action -> resources a role's policy allows."""
    granted: dict[str, set[str]] = {}
    for statement in _role_policy(stack, role):
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(as_list(statement["Resource"]))
    return granted


def test_every_policy_is_parliament_clean(stack: StackRun) -> None:
    documents = list(stack.policy_documents())
    # Role policies, bucket policies, the topic policy and the analyst policy.
    assert len(documents) == {"dev": 12, "prod": 14}[stack.stack]
    for resource, document in documents:
        findings = analyze_policy_string(json.dumps(document)).findings
        assert not findings, f"{resource.type} {resource.name}: {[(f.issue, f.detail) for f in findings]}"


def test_the_lint_catches_an_unscoped_grant() -> None:
    # The check above can fail: parliament flags `*` where the action could name a resource.
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    assert [f.issue for f in analyze_policy_string(json.dumps(document)).findings] == ["RESOURCE_STAR"]


def test_no_policy_allows_every_action_of_a_service(stack: StackRun) -> None:
    for resource, document in stack.policy_documents():
        for statement in statements(document):
            if statement["Effect"] == "Allow":
                wildcards = [a for a in as_list(statement["Action"]) if a == "*" or a.endswith("*")]
                assert not wildcards, f"{resource.name} allows {wildcards}"


def test_a_star_resource_only_for_actions_aws_cannot_scope(stack: StackRun) -> None:
    starred = set()
    for resource, document in stack.policy_documents():
        for statement in statements(document):
            if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
                for action in as_list(statement["Action"]):
                    assert not _resource_types(action), f"{resource.name}: {action} could be scoped"
                    starred.add(action)
    assert "cloudwatch:PutMetricData" in starred and "xray:PutTraceSegments" in starred


def test_every_scoped_resource_belongs_to_this_stack(stack: StackRun) -> None:
    prefixes = {"arn:aws:glue:eu-west-1:123456789012:catalog"}
    for resource in stack.resources:
        if "arn" in resource.outputs:
            prefixes.add(resource.outputs["arn"])
    databases = set(stack.outputs["databaseNames"].values())
    prefixes |= {
        f"arn:aws:glue:eu-west-1:{ACCOUNT}:{kind}/{db}" for db in databases for kind in ("database", "table")
    }
    (state_machine,) = stack.of_type("aws:sfn/stateMachine:StateMachine")
    name = state_machine.outputs["name"]
    prefixes |= {f"arn:aws:states:eu-west-1:{ACCOUNT}:{kind}:{name}" for kind in ("execution", "express")}
    for role in SERVICES_BY_ROLE:
        if stack.stack == "dev" and "scheduler" in role:
            continue
        for action, resources in _granted(stack, role).items():
            for arn in resources - {"*"}:
                assert any(arn == p or arn.startswith((f"{p}/", f"{p}:")) for p in prefixes), (
                    f"{role}: {action} on {arn}"
                )


def test_each_role_is_assumed_by_one_service(stack: StackRun) -> None:
    roles = {role.name: document for role, document in stack.trust_policies()}
    expected = {k: v for k, v in SERVICES_BY_ROLE.items() if stack.stack == "prod" or "scheduler" not in k}
    assert set(roles) == set(expected)
    for name, document in roles.items():
        (statement,) = statements(document)
        assert statement["Principal"] == {"Service": expected[name]}
        assert as_list(statement["Action"]) == ["sts:AssumeRole"]
        if expected[name] in ("states.amazonaws.com", "scheduler.amazonaws.com"):
            # Confused-deputy protection where the service supports it.
            assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_the_ingestion_touches_only_its_bronze_prefixes_and_its_secret(stack: StackRun) -> None:
    granted = _granted(stack, "medallion-bronze-role")
    bronze = f"arn:aws:s3:::{stack.outputs['bucketNames']['bronze']}"
    assert (
        granted["s3:PutObject"]
        == granted["s3:GetObject"]
        == {
            f"{bronze}/orders/*",
            f"{bronze}/_manifests/orders/*",
            f"{bronze}/_state/orders/watermark.json",
            f"{bronze}/customers/*",
            f"{bronze}/_manifests/customers/*",
            f"{bronze}/_state/customers/watermark.json",
        }
    )
    assert "s3:DeleteObject" not in granted
    assert granted["secretsmanager:GetSecretValue"] == {stack.outputs["sourceTokenSecretArn"]}
    other_buckets = {name for layer, name in stack.outputs["bucketNames"].items() if layer != "bronze"}
    assert not any(b in arn for arns in granted.values() for arn in arns for b in other_buckets)


@pytest.mark.parametrize(
    ("role", "written", "read"),
    [("medallion-silver-role", SILVER_TABLES, ()), ("medallion-gold-role", GOLD_TABLES, SILVER_TABLES)],
)
def test_each_job_writes_only_its_own_layer_tables(
    stack: StackRun, role: str, written: tuple[Any, ...], read: tuple[Any, ...]
) -> None:
    granted = _granted(stack, role)
    databases = stack.outputs["databaseNames"]

    def tables(resources: set[str]) -> set[str]:
        return {arn.split(":table/")[1] for arn in resources if ":table/" in arn}

    layer = written[0].layer.value
    assert tables(granted["glue:CreateTable"]) == {f"{databases[layer]}/{t.name}" for t in written}
    assert tables(granted["glue:UpdateTable"]) == tables(granted["glue:CreateTable"])
    readable = {f"{databases[t.layer.value]}/{t.name}" for t in (*written, *read)}
    assert tables(granted["glue:GetTable"]) == readable
    writable_buckets = {arn.split(":::")[1].split("/")[0] for arn in granted["s3:PutObject"]}
    assert writable_buckets == {stack.outputs["bucketNames"][layer]}


def test_the_audit_job_may_publish_or_drop_a_branch_of_every_silver_and_gold_table_and_touch_no_bronze(
    stack: StackRun,
) -> None:
    # Both are one Iceberg commit per table: a new metadata file, then the catalog's pointer to it.
    granted = _granted(stack, "medallion-audit-role")
    databases = stack.outputs["databaseNames"]
    layers = {"silver": SILVER_TABLES, "gold": GOLD_TABLES}
    every_table = {f"{databases[layer]}/{t.name}" for layer, written in layers.items() for t in written}
    for action in ("glue:GetTable", "glue:UpdateTable"):
        assert {arn.split(":table/")[1] for arn in granted[action] if ":table/" in arn} == every_table
    writable_buckets = {arn.split(":::")[1].split("/")[0] for arn in granted["s3:PutObject"]}
    assert writable_buckets == {stack.outputs["bucketNames"][layer] for layer in layers}
    bronze = stack.outputs["bucketNames"]["bronze"]
    assert not any(bronze in arn for arns in granted.values() for arn in arns)


OBJECTS = {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
JOB = {
    *OBJECTS,
    "s3:PutObject",
    "s3:DeleteObject",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "cloudwatch:PutMetricData",
}
ACTIONS_BY_ROLE = {
    "medallion-bronze-role": {
        *OBJECTS,
        "s3:PutObject",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "secretsmanager:GetSecretValue",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    },
    "medallion-silver-role": JOB,
    "medallion-gold-role": JOB,
    "medallion-audit-role": JOB,
    "medallion-orchestrator-role": {
        "lambda:InvokeFunction",
        "glue:StartJobRun",
        "glue:GetJobRun",
        "glue:GetJobRuns",
        "glue:BatchStopJobRun",
        "sns:Publish",
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "states:DescribeExecution",
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    },
    "medallion-orchestrator-scheduler-role": {"states:StartExecution"},
}


def test_each_role_is_granted_exactly_the_actions_its_actor_uses(stack: StackRun) -> None:
    for role, actions in ACTIONS_BY_ROLE.items():
        if stack.stack == "dev" and "scheduler" in role:
            continue
        assert set(_granted(stack, role)) == actions, role


def test_the_state_machine_holds_only_its_own_run_lock_and_asks_only_about_its_own_executions(
    stack: StackRun,
) -> None:
    granted = _granted(stack, "medallion-orchestrator-role")
    (table,) = stack.of_type("aws:dynamodb/table:Table")
    for action in ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"):
        assert granted[action] == {table.outputs["arn"]}
    name = f"lakehouse-{stack.stack}-medallion"
    assert granted["states:DescribeExecution"] == {
        f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:{name}:*",
        f"arn:aws:states:eu-west-1:{ACCOUNT}:express:{name}:*",
    }


def test_only_the_silver_job_may_touch_the_checkpoint_prefix(stack: StackRun) -> None:
    silver_bucket = stack.outputs["bucketNames"]["silver"]
    for role, expected in (
        ("medallion-silver-role", True),
        ("medallion-gold-role", False),
        ("medallion-audit-role", False),
    ):
        granted = _granted(stack, role)
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            checkpoints = {arn for arn in granted[action] if "_checkpoints" in arn}
            assert checkpoints == ({f"arn:aws:s3:::{silver_bucket}/_checkpoints*"} if expected else set())
