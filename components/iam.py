"""IAM policy documents as typed statements, and one role per AWS service actor.

Statements refuse wildcard actions, and a `*` resource must be asked for by name (ANY_RESOURCE) with a
comment saying which actions AWS cannot scope. The tests lint every rendered document with parliament.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_aws as aws

from components.naming import Naming

POLICY_VERSION = "2012-10-17"
# For the few actions AWS does not scope to a resource (X-Ray, CloudWatch metrics, log delivery).
ANY_RESOURCE = "*"


@dataclass(frozen=True)
class Statement:
    """One policy statement; resources and condition values may be Pulumi outputs."""

    actions: tuple[str, ...]
    resources: tuple[pulumi.Input[str], ...] = ()
    effect: str = "Allow"
    sid: str | None = None
    principal: pulumi.Input[Any] | None = None
    condition: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        wildcards = [a for a in self.actions if a == "*" or a.endswith(":*")]
        # A Deny may name a whole service (deny s3:* without TLS); an Allow must list what it grants.
        if wildcards and self.effect == "Allow":
            raise ValueError(f"an Allow statement must list its actions, not {wildcards}")
        if not self.actions:
            raise ValueError("a statement needs at least one action")

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Effect": self.effect}
        if self.sid:
            document["Sid"] = self.sid
        if self.principal is not None:
            document["Principal"] = self.principal
        document["Action"] = list(self.actions)
        if self.resources:
            document["Resource"] = list(self.resources)
        if self.condition:
            document["Condition"] = {operator: dict(values) for operator, values in self.condition.items()}
        return document


def policy_document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    """The JSON policy document of `statements`, resolved once every output in them is known."""
    return pulumi.Output.json_dumps(
        {"Version": POLICY_VERSION, "Statement": [statement.render() for statement in statements]}
    )


def trust_policy(service: str, source_account: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    """Let one AWS service assume the role; with `source_account`, only on behalf of this account."""
    condition = {"StringEquals": {"aws:SourceAccount": source_account}} if source_account is not None else {}
    return policy_document(
        [
            Statement(
                actions=("sts:AssumeRole",),
                principal={"Service": f"{service}.amazonaws.com"},
                condition=condition,
            )
        ]
    )


@dataclass(frozen=True)
class ServiceRole:
    """A role and its one inline policy; resources that check permissions on creation depend on `policy`."""

    role: aws.iam.Role
    policy: aws.iam.RolePolicy


def service_role(
    name: str,
    *,
    service: str,
    statements: Sequence[Statement],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    source_account: pulumi.Input[str] | None = None,
    description: str = "",
) -> ServiceRole:
    """One role for one actor, allowed exactly `statements`; children are named `{name}-role`/`-policy`."""
    options = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-role",
        # Role names are generated: the stack's roles are told apart by their path (docs/deploy-policy).
        path=Naming(tags["project"], tags["stack"]).role_path,
        assume_role_policy=trust_policy(service, source_account),
        description=description,
        tags=dict(tags),
        opts=options,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=policy_document(statements),
        opts=options,
    )
    return ServiceRole(role=role, policy=policy)
