"""The deployed definition, executed by moto's Step Functions interpreter on the success and failure paths.

moto cannot run `glue:startJobRun.sync`, so the test's copy starts the Glue jobs request-response; every
other part of the definition (paths, result selectors, retries, catches, the SNS task) runs as deployed.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import lambda_simple_backends
from moto.sns.models import sns_backends

from tests.infra.stack_run import ACCOUNT_ID
from tests.infra.stacks import StackRun

REGION = "eu-west-1"
SUMMARY = {
    "run_id": "exec-1",
    "manifest": "s3://bronze/_manifests/orders/exec-1.json",
    "pages": 2,
    "records": 1500,
    "objects": 2,
    "watermark": "2024-05-01T00:00:00Z",
}


@dataclass(frozen=True)
class Execution:
    status: str
    output: dict[str, Any]
    error: str | None
    scheduled: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield


def _execute(stack: StackRun, jobs: tuple[str, ...], lambda_result: dict[str, Any]) -> Execution:
    """Create the stack's function, `jobs` and topic in moto, run the state machine once, and report."""
    definition = stack.state_machine_definition()
    for state in definition["States"].values():
        state["Resource"] = state.get("Resource", "").replace("glue:startJobRun.sync", "glue:startJobRun")
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=stack.outputs["functionName"],
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    lambda_simple_backends[ACCOUNT_ID][REGION].lambda_simple_results_queue.append(json.dumps(lambda_result))
    glue = boto3.client("glue", region_name=REGION)
    for step in jobs:
        glue.create_job(
            Name=stack.outputs["jobNames"][step],
            Role=role,
            Command={"Name": "glueetl", "ScriptLocation": "s3://a/b.py"},
        )
    topic_name = stack.outputs["alertTopicArn"].split(":")[-1]
    topic = boto3.client("sns", region_name=REGION).create_topic(Name=topic_name)["TopicArn"]
    assert topic == stack.outputs["alertTopicArn"]

    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    machine = stepfunctions.create_state_machine(
        name="pipeline", definition=json.dumps(definition), roleArn=role
    )
    execution = stepfunctions.start_execution(stateMachineArn=machine["stateMachineArn"], name="exec-1")[
        "executionArn"
    ]
    for _ in range(200):
        description = stepfunctions.describe_execution(executionArn=execution)
        if description["status"] != "RUNNING":
            break
        time.sleep(0.05)
    history = stepfunctions.get_execution_history(executionArn=execution)["events"]
    scheduled = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in history
        if e["type"] == "TaskScheduled"
    ]
    notifications = [
        json.loads(n[1]) for n in sns_backends[ACCOUNT_ID][REGION].topics[topic].sent_notifications
    ]
    return Execution(
        status=description["status"],
        output=json.loads(description.get("output") or "{}"),
        error=description.get("error"),
        scheduled=scheduled,
        notifications=notifications,
    )


@pytest.mark.usefixtures("aws")
def test_a_run_ingests_then_merges_the_ingested_run_then_rebuilds_gold(dev: StackRun) -> None:
    execution = _execute(dev, jobs=("Silver", "Gold"), lambda_result=SUMMARY)

    assert execution.status == "SUCCEEDED"
    ingest, silver, gold = execution.scheduled
    assert ingest["Payload"]["run_id"] == "exec-1"
    assert ingest["Payload"]["started_at"]
    assert silver == {
        "JobName": "lakehouse-dev-silver",
        "Arguments": {"--run-id": "exec-1", "--manifest": SUMMARY["manifest"]},
    }
    assert gold == {"JobName": "lakehouse-dev-gold", "Arguments": {}}
    assert execution.output["results"]["Ingest"] == SUMMARY
    assert execution.notifications == []


@pytest.mark.usefixtures("aws")
def test_a_failed_step_is_published_and_fails_the_execution(dev: StackRun) -> None:
    # The Silver job does not exist, so starting it fails.
    execution = _execute(dev, jobs=("Gold",), lambda_result=SUMMARY)

    assert execution.status == "FAILED"
    assert execution.error == "PipelineFailed"
    (notification,) = execution.notifications
    assert notification["pipeline"] == "orders"
    assert notification["error"] == "Glue.EntityNotFoundException"
    assert "lakehouse-dev-silver" in notification["cause"]
    assert notification["execution"].endswith(":exec-1")
    # Gold never started.
    assert [p.get("JobName") for p in execution.scheduled[1:2]] == ["lakehouse-dev-silver"]
    assert not any(p.get("JobName") == "lakehouse-dev-gold" for p in execution.scheduled)


@pytest.mark.usefixtures("aws")
def test_an_ingestion_result_without_the_summary_fields_is_a_failure(dev: StackRun) -> None:
    execution = _execute(dev, jobs=("Silver", "Gold"), lambda_result={"unexpected": True})

    assert execution.status == "FAILED"
    (notification,) = execution.notifications
    assert notification["error"] == "States.Runtime"
