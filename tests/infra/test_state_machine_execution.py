"""The deployed definition, executed by moto's Step Functions interpreter on the success and failure paths.

moto cannot run `glue:startJobRun.sync`, so the test's copy starts the Glue jobs request-response; and
moto's AWS SDK integrations hand parameters to boto3 and results back without Step Functions' PascalCase
(`ExecutionArn`, `Status`), so the copy names them as boto3 does. Every other part of the definition
(paths, result selectors, the ingestion loop, the run lock on DynamoDB, retries, catches, the SNS task)
runs as deployed.
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
    "run_id": "exec-1-001",
    "manifest": "s3://bronze/_manifests/orders/exec-1-001.json",
    "pages": 2,
    "records": 1500,
    "objects": 2,
    "watermark": "2024-05-01T00:00:00Z",
    "has_more": False,
}


def summary(iteration: int, has_more: bool, dataset: str = "orders") -> dict[str, Any]:
    run_id = f"exec-1-{iteration:03d}"
    return {
        **SUMMARY,
        "run_id": run_id,
        "manifest": f"s3://bronze/_manifests/{dataset}/{run_id}.json",
        "has_more": has_more,
    }


# dev runs one dataset at a time, in the order declared: customers first, then orders.
CUSTOMERS = summary(1, False, "customers")


@dataclass(frozen=True)
class Execution:
    status: str
    output: dict[str, Any]
    error: str | None
    cause: str | None
    scheduled: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    lock_items: list[dict[str, Any]]

    def ingestions(self, dataset: str | None = None) -> list[dict[str, Any]]:
        return [
            p["Payload"]
            for p in self.scheduled
            if "Payload" in p and (dataset is None or p["Payload"]["dataset"] == dataset)
        ]

    def jobs(self) -> list[str]:
        return [p["JobName"] for p in self.scheduled if "JobName" in p]


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        yield


def _execute(
    stack: StackRun,
    jobs: tuple[str, ...],
    lambda_results: list[dict[str, Any]],
    lock_holder: str | None = None,
) -> Execution:
    """Create the stack's function, `jobs`, topic and lock table in moto (the lock held by `lock_holder`),
    run the state machine once, and report."""
    definition = stack.state_machine_definition()
    _without_sync(definition)
    check = definition["States"]["CheckRunLockHolder"]
    check["Parameters"] = {"executionArn.$": check["Parameters"].pop("ExecutionArn.$")}
    assert check["ResultSelector"] == {"status.$": "$.Status"}
    check["ResultSelector"] = {"status.$": "$.status"}
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
    for result in lambda_results:
        lambda_simple_backends[ACCOUNT_ID][REGION].lambda_simple_results_queue.append(json.dumps(result))
    (table,) = stack.of_type("aws:dynamodb/table:Table")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=table.outputs["name"],
        KeySchema=[{"AttributeName": "pipeline", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pipeline", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if lock_holder is not None:
        dynamodb.put_item(
            TableName=table.outputs["name"],
            Item={"pipeline": {"S": "medallion"}, "execution": {"S": lock_holder}, "started_at": {"S": "x"}},
        )
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
    for _ in range(400):
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
        cause=description.get("cause"),
        scheduled=scheduled,
        notifications=notifications,
        lock_items=dynamodb.scan(TableName=table.outputs["name"])["Items"],
    )


def _without_sync(definition: dict[str, Any]) -> None:
    for state in definition["States"].values():
        state["Resource"] = state.get("Resource", "").replace("glue:startJobRun.sync", "glue:startJobRun")
        if state["Type"] == "Map":
            _without_sync(state["Iterator"])


@pytest.mark.usefixtures("aws")
def test_a_run_ingests_then_merges_each_dataset_then_rebuilds_gold(dev: StackRun) -> None:
    execution = _execute(dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[CUSTOMERS, SUMMARY])

    assert execution.status == "SUCCEEDED", [(n["error"], n["cause"]) for n in execution.notifications]
    lock, ingest_customers, silver_customers, ingest, silver, gold, audit, release = execution.scheduled
    assert lock["Item"]["execution"]["S"].endswith(":exec-1")
    assert ingest["Payload"] == {
        "run_id": "exec-1",
        "started_at": ingest["Payload"]["started_at"],
        "iteration": 1,
        "dataset": "orders",
    }
    assert ingest_customers["Payload"]["dataset"] == "customers"
    assert silver_customers == {
        "JobName": "lakehouse-dev-silver",
        "Arguments": {
            "--dataset": "customers",
            "--run-id": "exec-1-001",
            "--manifest": CUSTOMERS["manifest"],
            "--branch": "exec-1",
        },
    }
    assert silver == {
        "JobName": "lakehouse-dev-silver",
        "Arguments": {
            "--dataset": "orders",
            "--run-id": "exec-1-001",
            "--manifest": SUMMARY["manifest"],
            "--branch": "exec-1",
        },
    }
    # Gold on the run's branch, then the audits, which publish it to main.
    assert gold == {"JobName": "lakehouse-dev-gold", "Arguments": {"--branch": "exec-1"}}
    assert audit == {"JobName": "lakehouse-dev-audit", "Arguments": {"--branch": "exec-1"}}
    assert release["ConditionExpression"] == "execution = :me"
    assert execution.notifications == []
    assert execution.lock_items == []  # given back


@pytest.mark.usefixtures("aws")
def test_a_failed_branch_is_published_and_fails_the_execution_without_gold(dev: StackRun) -> None:
    # The Silver job does not exist, so starting it fails in the first dataset's branch.
    execution = _execute(dev, jobs=("Gold",), lambda_results=[CUSTOMERS, SUMMARY])

    assert execution.status == "FAILED"
    assert execution.lock_items == []  # given back on failure too
    assert execution.error == "PipelineFailed"
    (notification,) = execution.notifications
    assert notification["pipeline"] == "medallion"
    assert notification["error"] == "Glue.EntityNotFoundException"
    assert "lakehouse-dev-silver" in notification["cause"]
    assert notification["execution"].endswith(":exec-1")
    # Gold never started.
    assert execution.jobs() == ["lakehouse-dev-silver"]


@pytest.mark.usefixtures("aws")
def test_an_ingestion_result_without_the_summary_fields_is_a_failure(dev: StackRun) -> None:
    execution = _execute(
        dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[{"unexpected": True}, SUMMARY]
    )

    assert execution.status == "FAILED"
    (notification,) = execution.notifications
    assert notification["error"] == "States.Runtime"


@pytest.mark.usefixtures("aws")
def test_ingestion_runs_again_while_it_has_more_then_silver_merges_once(dev: StackRun) -> None:
    results = [summary(1, True), summary(2, True), summary(3, False)]
    execution = _execute(dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[CUSTOMERS, *results])

    assert execution.status == "SUCCEEDED"
    assert [p["iteration"] for p in execution.ingestions("orders")] == [1, 2, 3]
    assert {p["run_id"] for p in execution.ingestions()} == {"exec-1"}
    assert execution.jobs() == [
        "lakehouse-dev-silver",
        "lakehouse-dev-silver",
        "lakehouse-dev-gold",
        "lakehouse-dev-audit",
    ]
    silver = [p for p in execution.scheduled if p.get("JobName") == "lakehouse-dev-silver"][-1]
    assert silver["Arguments"]["--run-id"] == "exec-1-003"


@pytest.mark.usefixtures("aws")
def test_the_stacks_cap_bounds_the_ingestion_runs_of_one_execution(dev: StackRun) -> None:
    # dev allows 5 runs; the source would need more.
    results = [summary(n, True) for n in range(1, 8)]
    execution = _execute(dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[CUSTOMERS, *results])

    assert execution.status == "SUCCEEDED"
    assert [p["iteration"] for p in execution.ingestions("orders")] == [1, 2, 3, 4, 5]
    assert execution.jobs() == [
        "lakehouse-dev-silver",
        "lakehouse-dev-silver",
        "lakehouse-dev-gold",
        "lakehouse-dev-audit",
    ]


@pytest.fixture
def running_execution(aws: None) -> Iterator[str]:
    """An execution that is still running (a long Wait), to hold the lock."""
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    arn = _start_waiting_execution()
    assert stepfunctions.describe_execution(executionArn=arn)["status"] == "RUNNING"
    yield arn
    stepfunctions.stop_execution(executionArn=arn)


def _start_waiting_execution() -> str:
    """Start an execution of another state machine that waits a minute; its ARN."""
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)
    machine = stepfunctions.create_state_machine(
        name="other",
        definition=json.dumps(
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
        ),
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/x",
    )
    started = stepfunctions.start_execution(stateMachineArn=machine["stateMachineArn"])
    return str(started["executionArn"])


def test_a_second_execution_fails_at_once_while_another_holds_the_lock(
    dev: StackRun, running_execution: str
) -> None:
    execution = _execute(
        dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[SUMMARY], lock_holder=running_execution
    )

    assert execution.status == "FAILED"
    assert execution.error == "PipelineBusy", [(n["error"], n["cause"]) for n in execution.notifications]
    assert (
        execution.cause is not None
        and "Another execution of the medallion pipeline is running" in execution.cause
    )
    assert execution.ingestions() == [] and execution.jobs() == []  # nothing ran
    assert [item["execution"]["S"] for item in execution.lock_items] == [running_execution]  # still held
    assert execution.notifications == []


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("holder_state", ["gone", "stopped"])
def test_a_lock_left_by_an_execution_that_no_longer_runs_is_taken_over(
    dev: StackRun, holder_state: str
) -> None:
    holder = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:lakehouse-dev-medallion:crashed"
    if holder_state == "stopped":
        holder = _start_waiting_execution()
        boto3.client("stepfunctions", region_name=REGION).stop_execution(executionArn=holder)

    execution = _execute(
        dev, jobs=("Silver", "Gold", "Audit"), lambda_results=[CUSTOMERS, SUMMARY], lock_holder=holder
    )

    assert execution.status == "SUCCEEDED"
    take_over = next(p for p in execution.scheduled if p.get("ConditionExpression") == "execution = :holder")
    assert take_over["ExpressionAttributeValues"] == {":holder": {"S": holder}}
    assert [p["iteration"] for p in execution.ingestions()] == [1, 1]
    assert execution.lock_items == []
