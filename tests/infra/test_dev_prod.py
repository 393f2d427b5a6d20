"""dev and prod differ where they should: sizing, retention, protection, log levels, schedule, e-mail."""

from __future__ import annotations

from typing import Any

from tests.infra.stacks import StackRun


def _summary(stack: StackRun) -> dict[str, Any]:
    (function,) = stack.of_type("aws:lambda/function:Function")
    (state_machine,) = stack.of_type("aws:sfn/stateMachine:StateMachine")
    silver = stack.one("aws:glue/job:Job", "medallion-silver-job")
    keys = stack.of_type("aws:kms/key:Key")
    (secret,) = stack.of_type("aws:secretsmanager/secret:Secret")
    return {
        "function memory": function.inputs["memorySize"],
        "function log level": function.inputs["loggingConfig"]["applicationLogLevel"],
        "state machine log level": state_machine.inputs["loggingConfiguration"]["level"],
        "silver workers": silver.inputs["numberOfWorkers"],
        "worker type": silver.inputs["workerType"],
        "execution class": silver.inputs["executionClass"],
        "log retention": {
            g.inputs["retentionInDays"] for g in stack.of_type("aws:cloudwatch/logGroup:LogGroup")
        },
        "key deletion window": {k.inputs["deletionWindowInDays"] for k in keys},
        "secret recovery window": secret.inputs["recoveryWindowInDays"],
        "protected buckets": {b.protect for b in stack.of_type("aws:s3/bucket:Bucket")},
        "force destroy": {b.inputs["forceDestroy"] for b in stack.of_type("aws:s3/bucket:Bucket")},
        "schedules": len(stack.of_type("aws:scheduler/schedule:Schedule")),
        "e-mail subscriptions": len(stack.of_type("aws:sns/topicSubscription:TopicSubscription")),
        "access logging": len(stack.of_type("aws:s3/bucketLogging:BucketLogging")),
    }


def test_dev_is_disposable_and_prod_is_sized_protected_and_watched(dev: StackRun, prod: StackRun) -> None:
    assert _summary(dev) == {
        "function memory": 512,
        "function log level": "DEBUG",
        "state machine log level": "ALL",
        "silver workers": 2,
        "worker type": "G.1X",
        "execution class": "FLEX",
        "log retention": {14},
        "key deletion window": {7},
        "secret recovery window": 7,
        "protected buckets": {False},
        "force destroy": {True},
        "schedules": 0,
        "e-mail subscriptions": 0,
        "access logging": 0,
    }
    assert _summary(prod) == {
        "function memory": 1024,
        "function log level": "INFO",
        "state machine log level": "ERROR",
        "silver workers": 10,
        "worker type": "G.2X",
        "execution class": "STANDARD",
        "log retention": {365},
        "key deletion window": {30},
        "secret recovery window": 30,
        "protected buckets": {True},
        "force destroy": {False},
        "schedules": 1,
        "e-mail subscriptions": 1,
        "access logging": 5,
    }


def test_the_stacks_share_no_physical_names(dev: StackRun, prod: StackRun) -> None:
    def names(stack: StackRun) -> set[str]:
        """Names the program chooses (AWS needs them unique per account and region, or globally)."""
        return {
            str(r.inputs[key])
            for r in stack.resources
            for key in ("name", "bucketPrefix", "namePrefix")
            if key in r.inputs
        }

    assert len(names(dev)) > 20
    # Two stacks can share one account and region.
    assert names(dev) & names(prod) == set()
