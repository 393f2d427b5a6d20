"""What a stack declared under mocks, with the look-ups the infrastructure tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STACKS = ("dev", "prod")


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    parent_type: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool

    @property
    def is_component(self) -> bool:
        return self.type.startswith("lakehouse:")


@dataclass(frozen=True)
class StackRun:
    stack: str
    resources: tuple[Resource, ...]
    outputs: dict[str, Any]

    @classmethod
    def from_json(cls, text: str) -> StackRun:
        document = json.loads(text)
        return cls(
            stack=document["stack"],
            resources=tuple(Resource(**resource) for resource in document["resources"]),
            outputs=document["outputs"],
        )

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str) -> Resource:
        matches = [r for r in self.of_type(type_token) if r.name == name]
        assert len(matches) == 1, f"expected one {type_token} named {name}, found {len(matches)}"
        return matches[0]

    def attached_to_bucket(self, type_token: str, bucket_name: str) -> list[Resource]:
        """Bucket settings resources (encryption, versioning, ...) that name the bucket."""
        return [r for r in self.of_type(type_token) if r.inputs.get("bucket") == bucket_name]

    def policy_documents(self) -> Iterator[tuple[Resource, dict[str, Any]]]:
        """Every IAM policy the stack declares: role policies, bucket and topic policies, key policies."""
        for resource in self.resources:
            policy = resource.inputs.get("policy")
            if isinstance(policy, str) and policy:
                yield resource, json.loads(policy)

    def trust_policies(self) -> Iterator[tuple[Resource, dict[str, Any]]]:
        for role in self.of_type("aws:iam/role:Role"):
            yield role, json.loads(role.inputs["assumeRolePolicy"])

    def state_machine_definition(self) -> dict[str, Any]:
        (state_machine,) = self.of_type("aws:sfn/stateMachine:StateMachine")
        definition: dict[str, Any] = json.loads(state_machine.inputs["definition"])
        return definition


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return list(found) if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]
