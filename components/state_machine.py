"""The Step Functions definition of a pipeline, rendered from the same objects the local runner walks.

Each step becomes one task state named after the step, in the pipeline's order: a FUNCTION step invokes
its Lambda function with the step's inputs as the event, a SPARK_JOB step runs its Glue job to completion
with the inputs as job arguments. Step results are kept at `$.results.<step>`, where later inputs find them.
Every failure is caught, published to the alert topic, and ends the execution in a Fail state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from components.asl import ALL_ERRORS, Catch, Fail, JsonPath, Retry, StateMachine, Task
from etl.pipeline import ExecutionValue, Input, Pipeline, Step, StepKind, StepResult

NOTIFY_FAILURE = "NotifyFailure"
FAILED = "Failed"
RESULTS_PATH = "$.results"
ERROR_PATH = "$.error"

EXECUTION_PATHS = {
    ExecutionValue.RUN_ID: "$$.Execution.Name",
    ExecutionValue.STARTED_AT: "$$.Execution.StartTime",
}

# Transient errors of the services themselves: the request never reached the step's code, so a retry is safe.
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
GLUE_SERVICE_ERRORS = (
    "Glue.ThrottlingException",
    "Glue.InternalServiceException",
    "Glue.OperationTimeoutException",
)
# A job allows one run at a time: a run still going (a manual one, or a slow previous execution) clears
# within minutes, so wait longer between these attempts than between throttling retries.
GLUE_BUSY_ERRORS = ("Glue.ConcurrentRunsExceededException",)
# A `.sync` job run that ends FAILED, TIMEOUT or STOPPED surfaces as States.TaskFailed, whatever the reason
# (the Cause holds the job run). Retried once, after a pause: the transient reasons are capacity (FLEX
# reclaiming executors, no workers to start on), S3 throttling and lost nodes. A run that fails for good
# (a bug, a damaged Bronze object) fails once more and is then reported. The retry is safe: the Silver job
# skips the runs its ledger lists and writes the ledger last, and the Gold job rebuilds its tables whole.
GLUE_RUN_FAILED_ERRORS = ("States.TaskFailed",)
# In a Retry, States.TaskFailed also matches every other task error but States.Timeout, so the requests
# that cannot succeed the second time are named first, with no attempt: retriers apply in order.
GLUE_REQUEST_ERRORS = (
    "Glue.EntityNotFoundException",
    "Glue.InvalidInputException",
    "Glue.AccessDeniedException",
    "Glue.ResourceNumberLimitExceededException",
    "States.Permissions",
)

LAMBDA_RETRY = Retry(LAMBDA_SERVICE_ERRORS, interval_seconds=2, max_attempts=6, max_delay_seconds=60)
GLUE_RETRY = Retry(GLUE_SERVICE_ERRORS, interval_seconds=10, max_attempts=5, max_delay_seconds=300)
GLUE_BUSY_RETRY = Retry(GLUE_BUSY_ERRORS, interval_seconds=120, max_attempts=5, max_delay_seconds=900)
GLUE_REQUEST_NO_RETRY = Retry(GLUE_REQUEST_ERRORS, interval_seconds=1, max_attempts=0, max_delay_seconds=1)
GLUE_RUN_FAILED_RETRY = Retry(
    GLUE_RUN_FAILED_ERRORS, interval_seconds=300, max_attempts=1, max_delay_seconds=600
)
NOTIFY_RETRY = Retry(("States.TaskFailed",), interval_seconds=2, max_attempts=3, max_delay_seconds=30)

# Room beyond the function's own timeout (cold start, invocation), and beyond the job's (queueing for
# capacity, which FLEX jobs may do, and start-up).
FUNCTION_TIMEOUT_MARGIN_SECONDS = 60
JOB_TIMEOUT_MARGIN_SECONDS = 1800
# Room for retries and the failure notification on top of the steps' timeouts.
EXECUTION_TIMEOUT_MARGIN_SECONDS = 3600

STEP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


R = TypeVar("R")


@dataclass(frozen=True)
class StepTarget(Generic[R]):
    """What runs a step in AWS: a Lambda function ARN (FUNCTION step) or a Glue job name (SPARK_JOB step).

    `R` is `str` when rendering, and a Pulumi output while the resources are still being declared.
    """

    resource: R
    timeout_seconds: int


@dataclass(frozen=True)
class Integrations:
    """Where the tasks point: the step targets, the alert topic, and the partition of the service ARNs."""

    targets: Mapping[str, StepTarget[str]]
    alert_topic_arn: str
    alert_subject: str
    partition: str = "aws"

    def service(self, action: str) -> str:
        return f"arn:{self.partition}:states:::{action}"


def result_path(step: str) -> str:
    """Where the result of `step` is kept in the execution's state."""
    return f"{RESULTS_PATH}.{step}"


def input_path(value: Input) -> JsonPath:
    """Where a step input comes from: the execution (run id, start time) or an earlier step's result."""
    if isinstance(value, ExecutionValue):
        return JsonPath(EXECUTION_PATHS[value])
    if isinstance(value, StepResult):
        return JsonPath(f"{result_path(value.step)}.{value.field}")
    raise TypeError(f"unknown pipeline input {value!r}")


def render_pipeline(pipeline: Pipeline, integrations: Integrations) -> StateMachine:
    """The state machine that runs `pipeline`'s steps in order, with retries and failure notification."""
    catch_all = (Catch((ALL_ERRORS,), next=NOTIFY_FAILURE, result_path=ERROR_PATH),)
    states: dict[str, Task | Fail] = {}
    timeouts = []
    for position, step in enumerate(pipeline.steps):
        if STEP_NAME.fullmatch(step.name) is None:
            raise ValueError(
                f"step name {step.name!r} must be letters, digits and _ (it is part of JSONPaths)"
            )
        following = pipeline.steps[position + 1].name if position + 1 < len(pipeline.steps) else None
        task = _step_task(step, integrations, following, catch_all)
        states[step.name] = task
        timeouts.append(task.timeout_seconds or 0)
    states[NOTIFY_FAILURE] = Task(
        comment="Tell the operators which execution failed and why, then fail the execution",
        resource=integrations.service("sns:publish"),
        parameters={
            "TopicArn": integrations.alert_topic_arn,
            "Subject": integrations.alert_subject,
            "Message": {
                "pipeline": pipeline.name,
                "execution": JsonPath("$$.Execution.Id"),
                "state_machine": JsonPath("$$.StateMachine.Id"),
                "error": JsonPath(f"{ERROR_PATH}.Error"),
                "cause": JsonPath(f"{ERROR_PATH}.Cause"),
            },
        },
        result_path=None,
        retries=(NOTIFY_RETRY,),
        # Even when the notification cannot be sent, the execution must end as failed.
        catches=(Catch((ALL_ERRORS,), next=FAILED, result_path="$.notification_error"),),
        next=FAILED,
    )
    states[FAILED] = Fail(error="PipelineFailed", cause=f"A step of the {pipeline.name} pipeline failed")
    return StateMachine(
        comment=f"The {pipeline.name} pipeline: {' -> '.join(step.name for step in pipeline.steps)}",
        start_at=pipeline.steps[0].name,
        states=states,
        timeout_seconds=sum(timeouts) + EXECUTION_TIMEOUT_MARGIN_SECONDS,
    )


def _step_task(
    step: Step, integrations: Integrations, following: str | None, catches: tuple[Catch, ...]
) -> Task:
    target = integrations.targets.get(step.name)
    if target is None:
        raise ValueError(f"step {step.name!r} has no target: deploy a function or job for it")
    inputs = {name: input_path(value) for name, value in step.inputs.items()}
    if step.kind is StepKind.FUNCTION:
        return Task(
            comment=step.description,
            resource=integrations.service("lambda:invoke"),
            parameters={"FunctionName": target.resource, "Payload": inputs},
            # Keep only the fields later steps and the run summary use, under the step's name.
            result_selector={name: JsonPath(f"$.Payload.{name}") for name in step.result_fields},
            result_path=result_path(step.name),
            timeout_seconds=target.timeout_seconds + FUNCTION_TIMEOUT_MARGIN_SECONDS,
            retries=(LAMBDA_RETRY,),
            catches=catches,
            next=following,
        )
    if step.kind is StepKind.SPARK_JOB:
        return Task(
            comment=step.description,
            # .sync: the state waits until the job run ends and fails when the run fails.
            resource=integrations.service("glue:startJobRun.sync"),
            parameters={"JobName": target.resource, "Arguments": inputs},
            result_path=result_path(step.name),
            timeout_seconds=target.timeout_seconds + JOB_TIMEOUT_MARGIN_SECONDS,
            retries=(GLUE_RETRY, GLUE_BUSY_RETRY, GLUE_REQUEST_NO_RETRY, GLUE_RUN_FAILED_RETRY),
            catches=catches,
            next=following,
        )
    raise ValueError(f"step {step.name!r} is of an unknown kind {step.kind!r}")
