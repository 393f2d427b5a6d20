"""The Step Functions definition of a pipeline, rendered from the same objects the local runner walks.

Each step becomes one task state named after the step, in the pipeline's order: a FUNCTION step invokes
its Lambda function with the step's inputs as the event, a SPARK_JOB step runs its Glue job to completion
with the inputs as job arguments. Step results are kept at `$.results.<step>`, where later inputs find them.
A repeated step counts its runs at `$.iterations.<step>` and loops through a Choice state while its
result says so, up to its cap. The per-dataset branch of the pipeline (Ingest and Silver) runs in a Map
state, once per declared dataset, at most `max_concurrency` at a time; the steps after it (Gold) run
when every dataset's branch succeeded. A branch that fails fails the Map, which alerts and skips Gold:
what the other branches merged stays valid (each Silver run commits whole, its ledger last), and the
next execution completes it. An exclusive pipeline first takes the run lock (see run_lock_states) and
gives it back at the end, on success and on failure. Every failure is caught, published to the alert
topic, and ends the execution in a Fail state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from components.asl import (
    ALL_ERRORS,
    Catch,
    Choice,
    Condition,
    Fail,
    JsonPath,
    Map,
    Pass,
    Retry,
    Rule,
    State,
    StateMachine,
    Succeed,
    Task,
)
from components.run_lock import RunLock, release_on_failure, run_lock_states
from etl import registry
from etl.pipeline import BranchValue, ExecutionValue, Input, Pipeline, Step, StepKind, StepResult, StepValue

NOTIFY_FAILURE = "NotifyFailure"
FAILED = "Failed"
SUCCEEDED = "Succeeded"  # only where a Choice needs somewhere to end
RESULTS_PATH = "$.results"
ITERATIONS_PATH = "$.iterations"
ERROR_PATH = "$.error"
DATASETS_STATE = "Datasets"  # the Map state of the per-dataset branch
LIST_DATASETS = "ListDatasets"
DATASETS_PATH = "$.datasets"

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
    # Runs of a repeated step per execution (the stack's cap); None: the step's own default.
    max_runs: int | None = None


@dataclass(frozen=True)
class Integrations:
    """Where the tasks point: the step targets, the alert topic, the run lock (for an exclusive pipeline),
    and the partition of the service ARNs."""

    targets: Mapping[str, StepTarget[str]]
    alert_topic_arn: str
    alert_subject: str
    partition: str = "aws"
    lock: RunLock | None = None
    # Dataset branches running at once (0: all of them); the stack's `datasetConcurrency`.
    max_concurrency: int = 0
    # The datasets the per-dataset branch runs for; None: every declared one.
    datasets: tuple[str, ...] | None = None

    def service(self, action: str) -> str:
        return f"arn:{self.partition}:states:::{action}"


def result_path(step: str) -> str:
    """Where the result of `step` is kept in the execution's state."""
    return f"{RESULTS_PATH}.{step}"


def iteration_path(step: str) -> str:
    """Where the run count of a repeated `step` is kept in the execution's state."""
    return f"{ITERATIONS_PATH}.{step}.iteration"


def input_path(value: Input, step: str = "") -> JsonPath:
    """Where a step input comes from: the execution (run id, start time), the step's own run count, or an
    earlier step's result."""
    if isinstance(value, ExecutionValue):
        return JsonPath(EXECUTION_PATHS[value])
    if isinstance(value, StepResult):
        return JsonPath(f"{result_path(value.step)}.{value.field}")
    if value is StepValue.ITERATION:
        return JsonPath(iteration_path(step))
    if value is BranchValue.DATASET:
        return JsonPath("$.dataset")  # the iteration's input, set by the Map state
    raise TypeError(f"unknown pipeline input {value!r}")


def entry_state(step: Step) -> str:
    """The state a step starts at: a repeated step first sets its run count."""
    return f"Start{step.name}" if step.repeat is not None else step.name


def render_pipeline(pipeline: Pipeline, integrations: Integrations) -> StateMachine:
    """The state machine that runs `pipeline`'s steps in order, with retries and failure notification."""
    catch_all = (Catch((ALL_ERRORS,), next=NOTIFY_FAILURE, result_path=ERROR_PATH),)
    lock = integrations.lock if pipeline.exclusive else None
    if pipeline.exclusive and lock is None:
        raise ValueError(f"the {pipeline.name} pipeline runs one at a time: give the rendering its run lock")
    for step in pipeline.steps:
        if STEP_NAME.fullmatch(step.name) is None:
            raise ValueError(
                f"step name {step.name!r} must be letters, digits and _ (it is part of JSONPaths)"
            )
    joined = pipeline.joined
    first = LIST_DATASETS if pipeline.branch else entry_state(joined[0])
    end = lock.release_state if lock is not None else None
    states: dict[str, State] = {}
    if lock is not None:
        states.update(run_lock_states(lock, pipeline.name, first, NOTIFY_FAILURE, ERROR_PATH))
    timeouts = []
    if pipeline.branch:
        after_branch = entry_state(joined[0]) if joined else end
        branch_states, timeout = _branch_states(pipeline, integrations, after_branch, catch_all)
        states.update(branch_states)
        timeouts.append(timeout)
    timeouts += _chain(joined, integrations, end, catch_all, states)
    after_notification = FAILED
    if lock is not None:
        after_notification = lock.release_after_failure_state
        states[after_notification] = release_on_failure(lock, pipeline.name, FAILED)
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
        discard_result=True,
        retries=(NOTIFY_RETRY,),
        # Even when the notification cannot be sent, the execution must end as failed (and unlocked).
        catches=(Catch((ALL_ERRORS,), next=after_notification, result_path="$.notification_error"),),
        next=after_notification,
    )
    states[FAILED] = Fail(error="PipelineFailed", cause=f"A step of the {pipeline.name} pipeline failed")
    if any(SUCCEEDED in state.transitions() for state in states.values()):
        states[SUCCEEDED] = Succeed()
    return StateMachine(
        comment=f"The {pipeline.name} pipeline: {_outline(pipeline)}",
        start_at=lock.acquire_state if lock is not None else first,
        states=states,
        timeout_seconds=sum(timeouts) + EXECUTION_TIMEOUT_MARGIN_SECONDS,
    )


def _chain(
    steps: tuple[Step, ...],
    integrations: Integrations,
    end: str | None,
    catches: tuple[Catch, ...],
    states: dict[str, State],
) -> list[int]:
    """Add the states of `steps`, one after the other, then `end`; the longest time each may take."""
    timeouts = []
    for position, step in enumerate(steps):
        following = entry_state(steps[position + 1]) if position + 1 < len(steps) else end
        step_states, timeout = _step_states(step, integrations, following, catches)
        states.update(step_states)
        timeouts.append(timeout)
    return timeouts


def _branch_states(
    pipeline: Pipeline, integrations: Integrations, following: str | None, catches: tuple[Catch, ...]
) -> tuple[dict[str, State], int]:
    """A Pass state that lists the datasets, and the Map state that runs the branch for each of them.

    Inside an iteration a failure is not caught: it fails the Map, whose catch alerts."""
    datasets = integrations.datasets
    names = list(datasets) if datasets is not None else [d.name for d in registry.datasets()]
    if not names:
        raise ValueError("no dataset is declared under datasets/: the pipeline has nothing to ingest")
    inner: dict[str, State] = {}
    timeouts = _chain(pipeline.branch, integrations, None, (), inner)
    if any(SUCCEEDED in state.transitions() for state in inner.values()):
        inner[SUCCEEDED] = Succeed()
    concurrency = integrations.max_concurrency or len(names)
    rounds = -(-len(names) // concurrency)
    steps = " -> ".join(step.name for step in pipeline.branch)
    states: dict[str, State] = {
        LIST_DATASETS: Pass(
            comment="The declared datasets, each ingested and merged in its own branch",
            parameters={"names": names},
            result_path=DATASETS_PATH,
            next=DATASETS_STATE,
        ),
        DATASETS_STATE: Map(
            comment=f"{steps} for each dataset, at most {concurrency} at a time",
            items_path=f"{DATASETS_PATH}.names",
            parameters={"dataset": JsonPath("$$.Map.Item.Value")},
            iterator=StateMachine(start_at=entry_state(pipeline.branch[0]), states=inner),
            max_concurrency=integrations.max_concurrency,
            catches=catches,
            next=following,
        ),
    }
    return states, sum(timeouts) * rounds


def _outline(pipeline: Pipeline) -> str:
    joined = [step.name for step in pipeline.joined]
    if not pipeline.branch:
        return " -> ".join(joined)
    branch = " -> ".join(step.name for step in pipeline.branch)
    return " -> ".join([f"({branch}) per dataset", *joined])


def _step_states(
    step: Step, integrations: Integrations, following: str | None, catches: tuple[Catch, ...]
) -> tuple[dict[str, State], int]:
    """The states of one step, and the longest time they may take."""
    target = integrations.targets.get(step.name)
    if target is None:
        raise ValueError(f"step {step.name!r} has no target: deploy a function or job for it")
    if step.repeat is None:
        task = _step_task(step, target, integrations, following, catches)
        return {step.name: task}, _longest(task)
    max_runs = target.max_runs or step.repeat.max_runs
    again, count = f"{step.name}HasMore", f"Count{step.name}"
    task = _step_task(step, target, integrations, again, catches)
    counter = f"{ITERATIONS_PATH}.{step.name}"
    states: dict[str, State] = {
        entry_state(step): Pass(
            comment=f"The first run of {step.name} in this execution",
            parameters={"iteration": 1},
            result_path=counter,
            next=step.name,
        ),
        step.name: task,
        again: Choice(
            comment=f"Run {step.name} again while it has more, at most {max_runs} times per execution",
            rules=(
                Rule(
                    (
                        Condition(
                            f"{result_path(step.name)}.{step.repeat.while_field}", "BooleanEquals", True
                        ),
                        Condition(iteration_path(step.name), "NumericLessThan", max_runs),
                    ),
                    next=count,
                ),
            ),
            default=following or SUCCEEDED,
        ),
        count: Pass(
            parameters={"iteration": JsonPath(f"States.MathAdd({iteration_path(step.name)}, 1)")},
            result_path=counter,
            next=step.name,
        ),
    }
    return states, _longest(task) * max_runs


def _longest(task: Task) -> int:
    """How long a task may take: a retry after a whole failed run repeats its timeout, after a wait."""
    timeout = task.timeout_seconds or 0
    reruns = GLUE_RUN_FAILED_RETRY.max_attempts if GLUE_RUN_FAILED_RETRY in task.retries else 0
    return timeout * (1 + reruns) + reruns * (GLUE_RUN_FAILED_RETRY.max_delay_seconds or 0)


def _step_task(
    step: Step,
    target: StepTarget[str],
    integrations: Integrations,
    following: str | None,
    catches: tuple[Catch, ...],
) -> Task:
    inputs = {name: input_path(value, step.name) for name, value in step.inputs.items()}
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
