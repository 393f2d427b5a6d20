"""The deploy role's policy: derived from what a stack declares, current, parliament-clean, stack-scoped."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

import parliament
import pytest
from parliament import analyze_policy_string

from components.deploy_policy import (
    RESOURCE_TYPES,
    StackTarget,
    UnmappedResourceTypes,
    deploy_policy,
    needs_permissions,
    unmapped_types,
)
from components.naming import Naming
from tests.infra.deploy_policy import policy_file, policy_of, policy_text, stack_target
from tests.infra.stack_run import ACCOUNT_ID
from tests.infra.stacks import StackRun, as_list, statements

# Actions newer than parliament's copy of the IAM reference, with their resource types from AWS's reference.
NEWER_ACTIONS = {"logs:PutLogGroupDeletionProtection": "log-group*"}
# IAM's limit on the inline policies of one role, in characters without whitespace (a managed policy
# allows only 6,144, which the deploy policy exceeds: the README attaches it inline).
INLINE_POLICY_LIMIT = 10_240
REGENERATE = "run `make deploy-policy` and commit docs/deploy-policy"


@pytest.fixture
def lint_knows_newer_actions() -> Iterator[None]:
    """Teach parliament the few actions its IAM reference predates, for the duration of one test."""
    added = []
    for action, resource_type in NEWER_ACTIONS.items():
        prefix, name = action.split(":")
        service = next(s for s in parliament.iam_definition if s["prefix"] == prefix)
        if not any(p["privilege"] == name for p in service["privileges"]):
            privilege = {
                "access_level": "Write",
                "description": "",
                "privilege": name,
                "resource_types": [
                    {"condition_keys": [], "dependent_actions": [], "resource_type": resource_type}
                ],
            }
            service["privileges"].append(privilege)
            added.append((service, privilege))
    parliament.expand_action.cache_clear()
    yield
    for service, privilege in added:
        service["privileges"].remove(privilege)
    parliament.expand_action.cache_clear()


def _committed(stack: StackRun) -> dict[str, Any]:
    path = policy_file(stack.stack)
    assert path.is_file(), f"{path.name} is missing: {REGENERATE}"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _grants(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in statements(document)}


def _allows(document: dict[str, Any], action: str, arn: str) -> bool:
    """Whether some statement lists `action` on a resource pattern `arn` matches (conditions aside)."""
    return any(
        action in as_list(s["Action"]) and any(fnmatch.fnmatchcase(arn, r) for r in as_list(s["Resource"]))
        for s in statements(document)
    )


def test_every_declared_resource_type_has_deploy_permissions(stack: StackRun) -> None:
    missing = unmapped_types(resource.type for resource in stack.resources)
    assert not missing, (
        f"no deploy permissions for resource type(s) {', '.join(missing)}: add them to RESOURCE_TYPES in "
        f"components/deploy_policy.py, then {REGENERATE}"
    )


def test_an_unmapped_resource_type_is_named(stack: StackRun) -> None:
    types = [resource.type for resource in stack.resources] + ["aws:ec2/vpc:Vpc"]
    with pytest.raises(UnmappedResourceTypes, match=r"resource type\(s\) aws:ec2/vpc:Vpc: add them"):
        deploy_policy(types, stack_target(stack.stack))


def test_the_committed_policy_is_current(stack: StackRun) -> None:
    path = policy_file(stack.stack)
    current = policy_text(policy_of(stack))
    assert path.is_file() and path.read_text(encoding="utf-8") == current, (
        f"{path.name} is stale: {REGENERATE}"
    )


def test_the_policy_covers_exactly_the_declared_types(stack: StackRun) -> None:
    declared = {resource.type for resource in stack.resources if needs_permissions(resource.type)}
    target = stack_target(stack.stack)
    # The same program with one type fewer needs fewer statements or fewer actions: nothing is granted
    # for a type the stack does not declare.
    policy = deploy_policy(declared, target)
    without_schedules = deploy_policy(declared - {"aws:scheduler/schedule:Schedule"}, target)
    granted = {a for s in statements(policy) for a in as_list(s["Action"])}
    assert ("scheduler:CreateSchedule" in granted) == ("aws:scheduler/schedule:Schedule" in declared)
    assert not any(
        a.startswith("scheduler:") for s in statements(without_schedules) for a in as_list(s["Action"])
    )


def test_the_policy_is_parliament_clean(stack: StackRun, lint_knows_newer_actions: None) -> None:
    findings = analyze_policy_string(json.dumps(_committed(stack))).findings
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_the_lint_would_catch_an_unknown_action_or_a_misplaced_resource(
    lint_knows_newer_actions: None,
) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "logs:PutLogGroupDeletionProtectionX", "Resource": "*"},
            {"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "arn:aws:s3:::bucket"},
        ],
    }
    issues = {f.issue for f in analyze_policy_string(json.dumps(document)).findings}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues


def test_the_policy_fits_the_inline_policy_limit(stack: StackRun) -> None:
    text = re.sub(r"\s", "", policy_file(stack.stack).read_text(encoding="utf-8"))
    assert len(text) <= INLINE_POLICY_LIMIT


def test_every_declared_resource_lies_where_its_type_is_granted(stack: StackRun) -> None:
    target = stack_target(stack.stack)
    document = _committed(stack)
    checked = 0
    for resource in stack.resources:
        mapping = RESOURCE_TYPES.get(resource.type)
        arn = resource.outputs.get("arn")
        if mapping is None or not mapping.scope or not isinstance(arn, str):
            continue
        scopes = [target.fill(pattern) for pattern in mapping.scope]
        assert any(fnmatch.fnmatchcase(arn, scope) for scope in scopes), (
            f"{resource.type} {arn} not in {scopes}"
        )
        checked += 1
    assert checked >= 15
    buckets = stack.outputs["bucketNames"].values()
    assert all(_allows(document, "s3:CreateBucket", f"arn:aws:s3:::{bucket}") for bucket in buckets)


def test_nothing_outside_the_stack_is_granted(stack: StackRun) -> None:
    document = _committed(stack)
    other = "other" if stack.stack != "other" else "another"
    elsewhere = [
        f"arn:aws:s3:::lakehouse-{other}-bronze-12345678",
        f"arn:aws:lambda:eu-west-1:{ACCOUNT_ID}:function:lakehouse-{other}-bronze",
        f"arn:aws:iam::{ACCOUNT_ID}:role/lakehouse/{other}/medallion-bronze-role-1234567",
        f"arn:aws:iam::{ACCOUNT_ID}:role/Admin",
        f"arn:aws:states:eu-west-1:{ACCOUNT_ID}:stateMachine:lakehouse-{other}-medallion",
        f"arn:aws:glue:eu-west-1:{ACCOUNT_ID}:database/lakehouse_{other}_silver",
        f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT_ID}:secret:lakehouse-{other}-source-api-token-abc",
        f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:lakehouse-{stack.stack}-bronze",
    ]
    for statement in statements(document):
        for arn in elsewhere:
            assert not any(fnmatch.fnmatchcase(arn, r) for r in as_list(statement["Resource"]) if r != "*"), (
                f"{statement['Sid']} reaches {arn}"
            )


def test_previews_can_validate_the_state_machine(stack: StackRun) -> None:
    grants = _grants(_committed(stack))
    assert grants["ValidateStateMachineDefinitions"]["Action"] == ["states:ValidateStateMachineDefinition"]


def test_roles_are_passed_only_from_the_stack_path_to_the_services_that_run_them(stack: StackRun) -> None:
    roles = stack.of_type("aws:iam/role:Role")
    assert {role.inputs["path"] for role in roles} == {f"/lakehouse/{stack.stack}/"}
    passes = [s for s in statements(_committed(stack)) if "iam:PassRole" in as_list(s["Action"])]
    services = set()
    for statement in passes:
        assert as_list(statement["Action"]) == ["iam:PassRole"]
        assert statement["Resource"] == [f"arn:aws:iam::*:role/lakehouse/{stack.stack}/*"]
        services.update(as_list(statement["Condition"]["StringEquals"]["iam:PassedToService"]))
    assert services == {
        f"{service}.amazonaws.com"
        for service in ("lambda", "glue", "states", *(("scheduler",) if stack.stack == "prod" else ()))
    }
    for role in roles:
        assert _allows(_committed(stack), "iam:PassRole", role.outputs["arn"])


def test_the_stack_keys_are_used_only_through_s3_and_secrets_manager(stack: StackRun) -> None:
    grants = _grants(_committed(stack))
    for sid, service in (
        ("UseStackKeysThroughS3", "s3"),
        ("UseStackKeysThroughSecretsManager", "secretsmanager"),
    ):
        grant = grants[sid]
        assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert grant["Condition"]["StringEquals"] == {
            "aws:ResourceTag/project": "lakehouse",
            "aws:ResourceTag/stack": stack.stack,
            "kms:ViaService": f"{service}.eu-west-1.amazonaws.com",
        }
    kms_actions = {
        a for s in statements(_committed(stack)) for a in as_list(s["Action"]) if a.startswith("kms:")
    }
    assert "kms:PutKeyPolicy" not in kms_actions and "kms:CreateGrant" not in kms_actions
    # Keys are created only with the stack's tags, which every other key action then requires.
    for statement in statements(_committed(stack)):
        if any(a.startswith("kms:") for a in as_list(statement["Action"])) and statement["Sid"] not in (
            "ListKeyAliases",
            "NameStackKeys",
        ):
            values = next(iter(statement["Condition"].values()))
            assert any(values.get(f"aws:{kind}Tag/stack") == stack.stack for kind in ("Resource", "Request"))


def test_the_policy_follows_the_stack_name() -> None:
    policy = deploy_policy(
        ["aws:lambda/function:Function"], StackTarget(Naming("lakehouse", "qa"), "us-east-2")
    )
    grants = _grants(policy)
    assert grants["ManageStackFunctions"]["Resource"] == [
        "arn:aws:lambda:us-east-2:*:function:lakehouse-qa-*"
    ]
