"""A small typed model of Amazon States Language: task, pass, choice, map, succeed and fail
states, with retries and catches.

Only what the pipeline uses is modelled. `render()` gives the JSON document Step Functions takes; the
model checks the graph (every transition leads to a state) before anything is deployed. JSONPath only:
the definitions must run on every Step Functions implementation the tests use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Error names of the States Language (https://states-language.net/#appendix-a-predefined-error-codes).
ALL_ERRORS = "States.ALL"


@dataclass(frozen=True)
class JsonPath:
    """A JSONPath value: rendered as `"key.$": "<path>"`, so Step Functions reads it from the state's input
    (`$.…`) or from the context object (`$$.…`), or computes it with an intrinsic function (`States.…`)."""

    path: str

    def __post_init__(self) -> None:
        if not self.path.startswith(("$", "States.")):
            raise ValueError(f"a path starts with $ or $$ (or is a States. function), got {self.path!r}")


def render_payload(value: Any) -> Any:
    """Render parameters: JsonPath values become `key.$` entries, in nested mappings and lists too."""
    if isinstance(value, Mapping):
        rendered: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, JsonPath):
                rendered[f"{key}.$"] = item.path
            else:
                rendered[key] = render_payload(item)
        return rendered
    if isinstance(value, list | tuple):
        return [render_payload(item) for item in value]
    if isinstance(value, JsonPath):
        raise ValueError("a path must be the value of a key")
    return value


@dataclass(frozen=True)
class Retry:
    """Retry the state on `errors`, waiting interval * backoff^n seconds (capped, with full jitter)."""

    errors: tuple[str, ...]
    interval_seconds: int
    max_attempts: int
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None
    # Full jitter spreads retries of many executions so they do not hit a throttled service in step.
    jitter: bool = True

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ErrorEquals": list(self.errors),
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
        }
        if self.max_delay_seconds is not None:
            document["MaxDelaySeconds"] = self.max_delay_seconds
        document["JitterStrategy"] = "FULL" if self.jitter else "NONE"
        return document


@dataclass(frozen=True)
class Catch:
    """On `errors`, continue at `next` with the error (Error, Cause) stored at `result_path`."""

    errors: tuple[str, ...]
    next: str
    result_path: str = "$.error"

    def render(self) -> dict[str, Any]:
        return {"ErrorEquals": list(self.errors), "ResultPath": self.result_path, "Next": self.next}


@dataclass(frozen=True)
class Task:
    resource: str
    parameters: Mapping[str, Any]
    comment: str = ""
    # The next state; None ends the execution successfully after this state.
    next: str | None = None
    # Fields picked from the task's result (JsonPath values), and where in the state's input they are stored.
    result_selector: Mapping[str, Any] | None = None
    result_path: str | None = None
    # Drop the task's result (`"ResultPath": null`): the state's output is its input.
    discard_result: bool = False
    timeout_seconds: int | None = None
    retries: tuple[Retry, ...] = ()
    catches: tuple[Catch, ...] = ()

    def __post_init__(self) -> None:
        if self.discard_result and self.result_path is not None:
            raise ValueError("a task either keeps its result at result_path or discards it")

    def transitions(self) -> tuple[str, ...]:
        return tuple(([self.next] if self.next else []) + [catch.next for catch in self.catches])

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Type": "Task"}
        if self.comment:
            document["Comment"] = self.comment
        document["Resource"] = self.resource
        document["Parameters"] = render_payload(self.parameters)
        if self.result_selector is not None:
            document["ResultSelector"] = render_payload(self.result_selector)
        if self.result_path is not None:
            document["ResultPath"] = self.result_path
        elif self.discard_result:
            document["ResultPath"] = None
        if self.timeout_seconds is not None:
            document["TimeoutSeconds"] = self.timeout_seconds
        if self.retries:
            document["Retry"] = [retry.render() for retry in self.retries]
        if self.catches:
            document["Catch"] = [catch.render() for catch in self.catches]
        if self.next:
            document["Next"] = self.next
        else:
            document["End"] = True
        return document


@dataclass(frozen=True)
class Fail:
    error: str
    cause: str
    comment: str = ""

    def transitions(self) -> tuple[str, ...]:
        return ()

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Type": "Fail"}
        if self.comment:
            document["Comment"] = self.comment
        document.update({"Error": self.error, "Cause": self.cause})
        return document


@dataclass(frozen=True)
class Pass:
    """Write `parameters` (JsonPath values and intrinsic functions resolved) to `result_path`."""

    parameters: Mapping[str, Any]
    result_path: str
    next: str
    comment: str = ""

    def transitions(self) -> tuple[str, ...]:
        return (self.next,)

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Type": "Pass"}
        if self.comment:
            document["Comment"] = self.comment
        document.update(
            {"Parameters": render_payload(self.parameters), "ResultPath": self.result_path, "Next": self.next}
        )
        return document


@dataclass(frozen=True)
class Condition:
    """One comparison of a Choice rule, e.g. Condition("$.more", "BooleanEquals", True)."""

    variable: str
    operator: str  # a States Language comparison operator: BooleanEquals, NumericLessThan, IsPresent, ...
    value: Any

    def render(self) -> dict[str, Any]:
        return {"Variable": self.variable, self.operator: self.value}


@dataclass(frozen=True)
class Rule:
    """Go to `next` when every condition holds."""

    conditions: tuple[Condition, ...]
    next: str

    def render(self) -> dict[str, Any]:
        if len(self.conditions) == 1:
            return {**self.conditions[0].render(), "Next": self.next}
        return {"And": [condition.render() for condition in self.conditions], "Next": self.next}


@dataclass(frozen=True)
class Choice:
    """The first rule that holds picks the next state; else `default`."""

    rules: tuple[Rule, ...]
    default: str
    comment: str = ""

    def transitions(self) -> tuple[str, ...]:
        return (*(rule.next for rule in self.rules), self.default)

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Type": "Choice"}
        if self.comment:
            document["Comment"] = self.comment
        document.update({"Choices": [rule.render() for rule in self.rules], "Default": self.default})
        return document


@dataclass(frozen=True)
class Succeed:
    comment: str = ""

    def transitions(self) -> tuple[str, ...]:
        return ()

    def render(self) -> dict[str, Any]:
        return {"Type": "Succeed", **({"Comment": self.comment} if self.comment else {})}


@dataclass(frozen=True)
class Map:
    """Run `iterator` (a state machine of its own) once per item of the list at `items_path`, at most
    `max_concurrency` iterations at a time (0: no limit). Each iteration's input is `parameters`
    (`$$.Map.Item.Value` is the item). The iterations' results are dropped: the state's output is its
    input. An iteration that fails fails the state (Step Functions stops the others)."""

    items_path: str
    parameters: Mapping[str, Any]
    iterator: StateMachine
    next: str | None = None
    comment: str = ""
    max_concurrency: int = 0
    catches: tuple[Catch, ...] = ()

    def transitions(self) -> tuple[str, ...]:
        return tuple(([self.next] if self.next else []) + [catch.next for catch in self.catches])

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {"Type": "Map"}
        if self.comment:
            document["Comment"] = self.comment
        document.update(
            {
                "ItemsPath": self.items_path,
                "Parameters": render_payload(self.parameters),
                "MaxConcurrency": self.max_concurrency,
                "Iterator": self.iterator.render(),
                "ResultPath": None,
            }
        )
        if self.catches:
            document["Catch"] = [catch.render() for catch in self.catches]
        if self.next:
            document["Next"] = self.next
        else:
            document["End"] = True
        return document


State = Task | Pass | Choice | Fail | Succeed | Map


@dataclass(frozen=True)
class StateMachine:
    """A whole definition: states by name, where it starts, and how long an execution may take."""

    start_at: str
    states: Mapping[str, State] = field(default_factory=lambda: MappingProxyType({}))
    comment: str = ""
    timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.start_at not in self.states:
            raise ValueError(f"StartAt {self.start_at!r} is not a state")
        for name, state in self.states.items():
            unknown = [target for target in state.transitions() if target not in self.states]
            if unknown:
                raise ValueError(f"state {name!r} leads to unknown state(s) {unknown}")
        unreachable = set(self.states) - self.reachable()
        if unreachable:
            raise ValueError(f"state(s) {sorted(unreachable)} cannot be reached from {self.start_at!r}")

    def reachable(self) -> set[str]:
        seen: set[str] = set()
        pending = [self.start_at]
        while pending:
            name = pending.pop()
            if name not in seen:
                seen.add(name)
                pending.extend(self.states[name].transitions())
        return seen

    def render(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.comment:
            document["Comment"] = self.comment
        document["StartAt"] = self.start_at
        if self.timeout_seconds is not None:
            document["TimeoutSeconds"] = self.timeout_seconds
        document["States"] = {name: state.render() for name, state in self.states.items()}
        return document

    def to_json(self) -> str:
        return json.dumps(self.render(), indent=2)
