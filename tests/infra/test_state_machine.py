"""The state machine: valid for independent validators, the same graph as the pipeline, failures caught."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from statelint.linter import Linter

from components.asl import Catch, Fail, JsonPath, StateMachine, Task, render_payload
from components.run_lock import RunLock
from components.state_machine import (
    FAILED,
    NOTIFY_FAILURE,
    Integrations,
    StepTarget,
    input_path,
    render_pipeline,
)
from etl.pipeline import PIPELINE, ExecutionValue, StepKind, StepResult
from tests.infra.stacks import StackRun

INTEGRATION = {
    StepKind.FUNCTION: "arn:aws:states:::lambda:invoke",
    StepKind.SPARK_JOB: "arn:aws:states:::glue:startJobRun.sync",
}


LOCK_STATES = [
    "AcquireRunLock",
    "ReadRunLock",
    "IsRunLockStillTaken",
    "CheckRunLockHolder",
    "IsRunLockHolderRunning",
    "TakeOverRunLock",
    "AnotherRunInProgress",
    "ReleaseRunLock",
]
LOOP_STATES = ["StartBronze", "Bronze", "BronzeHasMore", "CountBronze"]


def flat_states(definition: dict[str, Any]) -> dict[str, Any]:
    """Every state by name, those of the per-dataset branch (the Map's iterator) included."""
    states = dict(definition["States"])
    for state in definition["States"].values():
        if state["Type"] == "Map":
            states.update(flat_states(state["Iterator"]))
    return states


def _main_path(definition: dict[str, Any]) -> list[str]:
    """State names from StartAt, following Next (a Choice's Default) until a state ends the execution."""
    path = [definition["StartAt"]]
    while True:
        state = definition["States"][path[-1]]
        following = state.get("Next", state.get("Default"))
        if following is None or following in path:
            break
        path.append(following)
    assert definition["States"][path[-1]].get("End") is True
    return path


def test_statelint_accepts_the_definition(stack: StackRun) -> None:
    assert Linter.validate(stack.state_machine_definition()) == []


def test_motos_parser_accepts_the_definition_as_deployed(stack: StackRun) -> None:
    (state_machine,) = stack.of_type("aws:sfn/stateMachine:StateMachine")
    program: Any = AmazonStateLanguageParser.parse(state_machine.inputs["definition"])[0]
    assert set(program.states.states) == {
        *LOCK_STATES,
        "ListDatasets",
        "Datasets",
        "Gold",
        "Audit",
        "ReleaseRunLockAfterFailure",
        NOTIFY_FAILURE,
        FAILED,
    }
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse(state_machine.inputs["definition"].replace('"Retry"', '"Retries"'))


def test_statelint_would_reject_a_broken_definition(stack: StackRun) -> None:
    broken = stack.state_machine_definition()
    broken["States"]["Gold"]["Next"] = "Nowhere"
    assert Linter.validate(broken)


def test_the_graph_is_the_pipeline_inside_the_run_lock(stack: StackRun) -> None:
    definition = stack.state_machine_definition()
    assert _main_path(definition) == [
        "AcquireRunLock",
        "ListDatasets",
        "Datasets",
        "Gold",
        "Audit",
        "ReleaseRunLock",
    ]
    datasets = definition["States"]["Datasets"]
    assert _main_path(datasets["Iterator"]) == ["StartBronze", "Bronze", "BronzeHasMore", "Silver"]
    assert datasets["ItemsPath"] == "$.datasets.names"
    assert datasets["Parameters"] == {"dataset.$": "$$.Map.Item.Value"}
    assert definition["States"]["ListDatasets"]["Parameters"] == {"names": ["customers", "orders"]}
    for step in PIPELINE.steps:
        state = flat_states(definition)[step.name]
        assert state["Type"] == "Task"
        assert state["Resource"] == INTEGRATION[step.kind]


def test_ingestion_runs_again_while_it_has_more_up_to_the_stacks_cap(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    cap = {"dev": 5, "prod": 10}[stack.stack]
    assert states["StartBronze"] == {
        "Type": "Pass",
        "Comment": "The first run of Bronze in this execution",
        "Parameters": {"iteration": 1},
        "ResultPath": "$.iterations.Bronze",
        "Next": "Bronze",
    }
    assert states["Bronze"]["Next"] == "BronzeHasMore"
    (rule,) = states["BronzeHasMore"]["Choices"]
    assert rule == {
        "And": [
            {"Variable": "$.results.Bronze.has_more", "BooleanEquals": True},
            {"Variable": "$.iterations.Bronze.iteration", "NumericLessThan": cap},
        ],
        "Next": "CountBronze",
    }
    assert states["BronzeHasMore"]["Default"] == "Silver"
    assert states["CountBronze"]["Parameters"] == {
        "iteration.$": "States.MathAdd($.iterations.Bronze.iteration, 1)"
    }
    assert states["CountBronze"]["Next"] == "Bronze"


def test_the_run_lock_is_an_item_of_the_stacks_table_taken_only_when_free(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    (table,) = stack.of_type("aws:dynamodb/table:Table")
    assert table.inputs["hashKey"] == "pipeline"
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    acquire = states["AcquireRunLock"]
    assert acquire["Resource"] == "arn:aws:states:::dynamodb:putItem"
    assert acquire["Parameters"]["TableName"] == table.outputs["name"]
    assert acquire["Parameters"]["ConditionExpression"] == "attribute_not_exists(pipeline)"
    assert acquire["Parameters"]["Item"]["execution"] == {"S.$": "$$.Execution.Id"}
    assert acquire["Catch"][0]["ErrorEquals"] == ["DynamoDB.ConditionalCheckFailedException"]
    assert acquire["ResultPath"] is None
    for release in ("ReleaseRunLock", "ReleaseRunLockAfterFailure"):
        assert states[release]["Resource"] == "arn:aws:states:::dynamodb:deleteItem"
        assert states[release]["Parameters"]["ConditionExpression"] == "execution = :me"
    assert states["TakeOverRunLock"]["Parameters"]["ConditionExpression"] == "execution = :holder"
    assert states["AnotherRunInProgress"]["Error"] == "PipelineBusy"


def test_tasks_point_at_the_deployed_function_and_jobs(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    (function,) = stack.of_type("aws:lambda/function:Function")
    assert states["Bronze"]["Parameters"]["FunctionName"] == function.outputs["arn"]
    for step in ("Silver", "Gold", "Audit"):
        assert states[step]["Parameters"]["JobName"] == stack.outputs["jobNames"][step]
    topic = states[NOTIFY_FAILURE]["Parameters"]["TopicArn"]
    assert topic == stack.outputs["alertTopicArn"]


def test_step_inputs_come_from_the_execution_and_earlier_results(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    assert states["Bronze"]["Parameters"]["Payload"] == {
        "run_id.$": "$$.Execution.Name",
        "started_at.$": "$$.Execution.StartTime",
        "iteration.$": "$.iterations.Bronze.iteration",
        "dataset.$": "$.dataset",
    }
    # The ingestion summary is kept under the step's name, and its run id and manifest are
    # the Silver job's --run-id and --manifest.
    assert states["Bronze"]["ResultPath"] == "$.results.Bronze"
    assert set(states["Bronze"]["ResultSelector"]) == {
        "run_id.$",
        "manifest.$",
        "pages.$",
        "records.$",
        "objects.$",
        "watermark.$",
        "has_more.$",
    }
    assert states["Silver"]["Parameters"]["Arguments"] == {
        "--dataset.$": "$.dataset",
        "--run-id.$": "$.results.Bronze.run_id",
        "--manifest.$": "$.results.Bronze.manifest",
        # Every run writes Silver and Gold to a branch named after the execution, which Audit publishes.
        "--branch.$": "$$.Execution.Name",
    }
    for step in ("Gold", "Audit"):
        assert states[step]["Parameters"]["Arguments"] == {"--branch.$": "$$.Execution.Name"}


def test_retries_back_off_with_jitter(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    lambda_retry = states["Bronze"]["Retry"]
    assert "Lambda.ServiceException" in lambda_retry[0]["ErrorEquals"]
    assert "Lambda.TooManyRequestsException" in lambda_retry[0]["ErrorEquals"]
    for step in ("Bronze", "Silver", "Gold", NOTIFY_FAILURE):
        for retry in states[step]["Retry"]:
            assert retry["BackoffRate"] > 1
            assert retry["JitterStrategy"] == "FULL"
            assert retry["MaxDelaySeconds"] >= retry["IntervalSeconds"]
            # Never every error: a failed ingestion is reported, not repeated.
            assert "States.ALL" not in retry["ErrorEquals"]
    glue_errors = {e for retry in states["Silver"]["Retry"] for e in retry["ErrorEquals"]}
    assert "Glue.ConcurrentRunsExceededException" in glue_errors


def test_every_failure_is_published_then_fails_the_execution(stack: StackRun) -> None:
    definition = stack.state_machine_definition()
    states = flat_states(definition)
    # A failure in a dataset's branch fails the Map state (the other branches stop), which alerts.
    for name in ("Datasets", "Gold"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": NOTIFY_FAILURE}
        ]
    assert not any("Catch" in states[step.name] for step in PIPELINE.branch)
    notify = states[NOTIFY_FAILURE]
    assert notify["Resource"] == "arn:aws:states:::sns:publish"
    assert notify["Parameters"]["Message"]["error.$"] == "$.error.Error"
    assert notify["Parameters"]["Message"]["cause.$"] == "$.error.Cause"
    # The lock is given back (when this execution holds it) before the execution fails.
    assert notify["Next"] == notify["Catch"][0]["Next"] == "ReleaseRunLockAfterFailure"
    release = states["ReleaseRunLockAfterFailure"]
    assert release["Next"] == release["Catch"][0]["Next"] == FAILED
    assert states[FAILED]["Type"] == "Fail"


def test_the_definition_uses_jsonpath_and_bounded_times(stack: StackRun) -> None:
    definition = stack.state_machine_definition()
    assert "QueryLanguage" not in definition
    assert all("TimeoutSeconds" in flat_states(definition)[s.name] for s in PIPELINE.steps)
    cap = {"dev": 5, "prod": 10}[stack.stack]
    states = flat_states(definition)
    # A Spark run that failed as a whole is run once more, after a wait: the execution allows for both.
    reruns = {
        name: sum(
            r["MaxAttempts"] for r in states[name]["Retry"] if r["ErrorEquals"] == ["States.TaskFailed"]
        )
        for name in ("Silver", "Gold")
    }
    assert reruns == {"Silver": 1, "Gold": 1}
    runs = {"Bronze": cap, "Silver": 2, "Gold": 2}
    step_timeouts = sum(states[name]["TimeoutSeconds"] * n for name, n in runs.items())
    assert definition["TimeoutSeconds"] > step_timeouts


def test_the_state_machine_logs_and_traces(stack: StackRun) -> None:
    (state_machine,) = stack.of_type("aws:sfn/stateMachine:StateMachine")
    logging = state_machine.inputs["loggingConfiguration"]
    log_group = stack.one("aws:cloudwatch/logGroup:LogGroup", "medallion-orchestrator-logs")
    assert logging["logDestination"] == f"{log_group.outputs['arn']}:*"
    assert logging["level"] == {"dev": "ALL", "prod": "ERROR"}[stack.stack]
    assert state_machine.inputs["tracingConfiguration"] == {"enabled": True}
    assert state_machine.inputs["type"] == "STANDARD"


def test_failed_timed_out_and_aborted_executions_reach_the_topic(stack: StackRun) -> None:
    (rule,) = stack.of_type("aws:cloudwatch/eventRule:EventRule")
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["source"] == ["aws.states"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [stack.outputs["stateMachineArn"]]
    (target,) = stack.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == stack.outputs["alertTopicArn"]
    (topic_policy,) = stack.of_type("aws:sns/topicPolicy:TopicPolicy")
    (publish, _) = json.loads(topic_policy.inputs["policy"])["Statement"]
    assert publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert publish["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.outputs["arn"]}}


def test_the_schedule_and_the_e_mail_only_where_the_stack_asks(stack: StackRun) -> None:
    schedules = stack.of_type("aws:scheduler/schedule:Schedule")
    subscriptions = stack.of_type("aws:sns/topicSubscription:TopicSubscription")
    if stack.stack == "dev":
        assert schedules == [] and subscriptions == []
        return
    (schedule,) = schedules
    assert schedule.inputs["scheduleExpression"] == "cron(30 2 * * ? *)"
    assert schedule.inputs["target"]["arn"] == stack.outputs["stateMachineArn"]
    scheduler_role = stack.one("aws:iam/role:Role", "medallion-orchestrator-scheduler-role")
    assert schedule.inputs["target"]["roleArn"] == scheduler_role.outputs["arn"]
    (subscription,) = subscriptions
    assert subscription.inputs["protocol"] == "email"
    assert subscription.inputs["endpoint"] == "data-oncall@example.com"


def _integrations() -> Integrations:
    return Integrations(
        targets={
            "Bronze": StepTarget("arn:aws:lambda:eu-west-1:123456789012:function:f", 300),
            "Silver": StepTarget("silver-job", 3600),
            "Gold": StepTarget("gold-job", 3600),
            "Audit": StepTarget("audit-job", 3600),
        },
        alert_topic_arn="arn:aws:sns:eu-west-1:123456789012:t",
        alert_subject="failed",
        lock=RunLock("lock-table"),
    )


def test_an_exclusive_pipeline_cannot_be_rendered_without_its_lock() -> None:
    with pytest.raises(ValueError, match="run lock"):
        render_pipeline(PIPELINE, replace(_integrations(), lock=None))
    concurrent = replace(PIPELINE, exclusive=False)
    definition = render_pipeline(concurrent, replace(_integrations(), lock=None)).render()
    assert definition["StartAt"] == "ListDatasets"
    assert flat_states(definition)["Audit"]["End"] is True
    assert flat_states(definition)[NOTIFY_FAILURE]["Next"] == FAILED
    assert Linter.validate(definition) == []


def test_a_repeated_last_step_ends_in_a_succeed_state() -> None:
    only_ingest = replace(PIPELINE, steps=PIPELINE.steps[:1], exclusive=False, per_dataset=1)
    definition = render_pipeline(only_ingest, replace(_integrations(), lock=None)).render()
    assert flat_states(definition)["BronzeHasMore"]["Default"] == "Succeeded"
    assert flat_states(definition)["Succeeded"] == {"Type": "Succeed"}
    assert Linter.validate(definition) == []


def test_rendering_needs_a_target_for_every_step() -> None:
    complete = _integrations()
    without_gold = replace(complete, targets={k: v for k, v in complete.targets.items() if k != "Gold"})
    with pytest.raises(ValueError, match="Gold"):
        render_pipeline(PIPELINE, without_gold)


def test_the_model_rejects_transitions_to_unknown_or_unreachable_states() -> None:
    task = Task(resource="arn", parameters={}, next="Missing")
    with pytest.raises(ValueError, match="unknown state"):
        StateMachine(start_at="A", states={"A": task})
    with pytest.raises(ValueError, match="cannot be reached"):
        StateMachine(start_at="A", states={"A": Task(resource="arn", parameters={}), "B": Fail("E", "C")})
    caught = Task(resource="arn", parameters={}, catches=(Catch(("States.ALL",), next="F"),))
    assert StateMachine(start_at="A", states={"A": caught, "F": Fail("E", "C")}).reachable() == {"A", "F"}


def test_paths_render_as_dollar_keys_at_any_depth() -> None:
    rendered = render_payload(
        {
            "a": JsonPath("$.x"),
            "b": {"c": JsonPath("$$.Execution.Name"), "d": 1},
            "e": [{"f": JsonPath("$.y")}],
        }
    )
    assert rendered == {"a.$": "$.x", "b": {"c.$": "$$.Execution.Name", "d": 1}, "e": [{"f.$": "$.y"}]}
    with pytest.raises(ValueError):
        JsonPath("x")


def test_inputs_map_to_execution_and_result_paths() -> None:
    assert input_path(ExecutionValue.RUN_ID).path == "$$.Execution.Name"
    assert input_path(ExecutionValue.STARTED_AT).path == "$$.Execution.StartTime"
    assert input_path(StepResult("Bronze", "manifest")).path == "$.results.Bronze.manifest"
    rendered = render_pipeline(PIPELINE, _integrations()).render()
    assert Linter.validate(rendered) == []


def test_a_failed_spark_run_is_retried_once_but_a_wrong_request_is_not(stack: StackRun) -> None:
    states = flat_states(stack.state_machine_definition())
    assert not any("States.TaskFailed" in r["ErrorEquals"] for r in states["Bronze"]["Retry"])
    for step in ("Silver", "Gold"):
        retries = states[step]["Retry"]
        (run_failed,) = (i for i, r in enumerate(retries) if r["ErrorEquals"] == ["States.TaskFailed"])
        assert retries[run_failed]["MaxAttempts"] == 1
        assert retries[run_failed]["IntervalSeconds"] >= 60
        # States.TaskFailed matches every task error in a Retry: the hopeless ones come first, with no
        # attempt, and the throttling and busy retries keep their own (earlier) retriers.
        (hopeless,) = (i for i, r in enumerate(retries) if "Glue.EntityNotFoundException" in r["ErrorEquals"])
        assert retries[hopeless]["MaxAttempts"] == 0
        assert "States.Permissions" in retries[hopeless]["ErrorEquals"]
        throttled = next(i for i, r in enumerate(retries) if "Glue.ThrottlingException" in r["ErrorEquals"])
        busy = next(
            i for i, r in enumerate(retries) if "Glue.ConcurrentRunsExceededException" in r["ErrorEquals"]
        )
        assert max(throttled, busy, hopeless) < run_failed
