"""One execution at a time: the run-lock states of the state machine, on an item of a DynamoDB table.

Step Functions lets executions of one state machine overlap (a schedule firing during a long backfill, a
manual start); two pipeline runs at once would ingest the same window twice and race their Iceberg
commits. So an exclusive pipeline starts by putting its lock item, on condition that there is none
(DynamoDB checks that condition atomically), and deletes it at the end, on success and on failure, on
condition that it still holds it.

An execution can end without reaching its last state: stopped by hand, timed out, or failed by a runtime
error in a state that cannot catch. Rather than an expiry time (JSONPath has no clock arithmetic), the
lock item names its holder, and a later execution that finds the lock taken asks Step Functions whether
the holder still runs: if it does not, the later execution takes the lock over (again on condition that
the item still names that holder); if it does, the later execution fails at once with `PipelineBusy`,
before changing anything. The next scheduled execution tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.asl import ALL_ERRORS, Catch, Choice, Condition, Fail, JsonPath, Retry, Rule, State, Task

# The table's key attribute: one item per pipeline.
LOCK_KEY = "pipeline"
HOLDER_PATH = "$.run_lock.holder"
HOLDER_STATUS_PATH = "$.run_lock.holder_status"
BUSY_ERROR = "PipelineBusy"

# The error the optimised DynamoDB integration raises when a condition does not hold.
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
DYNAMODB_SERVICE_ERRORS = (
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.RequestLimitExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
)
# The holder's execution is gone from Step Functions' history: it certainly does not run.
HOLDER_UNKNOWN = "Sfn.ExecutionDoesNotExistException"
LOCK_RETRY = Retry(DYNAMODB_SERVICE_ERRORS, interval_seconds=1, max_attempts=5, max_delay_seconds=20)


@dataclass(frozen=True)
class RunLock:
    """The table that holds the lock items, and the names of the lock states."""

    table_name: str
    acquire_state: str = "AcquireRunLock"
    read_state: str = "ReadRunLock"
    lock_gone_state: str = "IsRunLockStillTaken"
    check_holder_state: str = "CheckRunLockHolder"
    holder_running_state: str = "IsRunLockHolderRunning"
    take_over_state: str = "TakeOverRunLock"
    busy_state: str = "AnotherRunInProgress"
    release_state: str = "ReleaseRunLock"
    release_after_failure_state: str = "ReleaseRunLockAfterFailure"


def _key(pipeline: str) -> dict[str, object]:
    return {LOCK_KEY: {"S": pipeline}}


def _item(pipeline: str) -> dict[str, object]:
    # The holder's ARN says all (its start time is one DescribeExecution away).
    return {**_key(pipeline), "execution": {"S": JsonPath("$$.Execution.Id")}}


def run_lock_states(
    lock: RunLock, pipeline: str, first_step: str, notify_failure: str, error_path: str
) -> dict[str, State]:
    """The states that take the lock before `first_step`, and give it back after the last step."""
    to_notify = Catch((ALL_ERRORS,), next=notify_failure, result_path=error_path)
    holder = f"{HOLDER_PATH}.Item.execution.S"
    return {
        lock.acquire_state: Task(
            comment="Take the run lock: only when no other execution holds it",
            resource="arn:aws:states:::dynamodb:putItem",
            parameters={
                "TableName": lock.table_name,
                "Item": _item(pipeline),
                "ConditionExpression": f"attribute_not_exists({LOCK_KEY})",
            },
            discard_result=True,
            retries=(LOCK_RETRY,),
            catches=(
                Catch((CONDITION_FAILED,), next=lock.read_state, result_path="$.run_lock.taken"),
                to_notify,
            ),
            next=first_step,
        ),
        lock.read_state: Task(
            comment="Which execution holds the lock?",
            resource="arn:aws:states:::dynamodb:getItem",
            parameters={"TableName": lock.table_name, "Key": _key(pipeline), "ConsistentRead": True},
            result_path=HOLDER_PATH,
            retries=(LOCK_RETRY,),
            catches=(to_notify,),
            next=lock.lock_gone_state,
        ),
        lock.lock_gone_state: Choice(
            comment="The holder may have given the lock back in the meantime: then take it",
            rules=(Rule((Condition(f"{HOLDER_PATH}.Item", "IsPresent", False),), next=lock.acquire_state),),
            default=lock.check_holder_state,
        ),
        lock.check_holder_state: Task(
            comment="Does the holder still run?",
            resource="arn:aws:states:::aws-sdk:sfn:describeExecution",
            parameters={"ExecutionArn": JsonPath(holder)},
            result_selector={"status": JsonPath("$.Status")},
            result_path=HOLDER_STATUS_PATH,
            catches=(
                Catch((HOLDER_UNKNOWN,), next=lock.take_over_state, result_path="$.run_lock.holder_unknown"),
                to_notify,
            ),
            next=lock.holder_running_state,
        ),
        lock.holder_running_state: Choice(
            rules=(
                Rule(
                    (Condition(f"{HOLDER_STATUS_PATH}.status", "StringEquals", "RUNNING"),),
                    next=lock.busy_state,
                ),
            ),
            default=lock.take_over_state,
        ),
        lock.take_over_state: Task(
            comment="The holder ended without giving the lock back (stopped, timed out): take it over",
            resource="arn:aws:states:::dynamodb:putItem",
            parameters={
                "TableName": lock.table_name,
                "Item": _item(pipeline),
                "ConditionExpression": "execution = :holder",
                "ExpressionAttributeValues": {":holder": {"S": JsonPath(holder)}},
            },
            discard_result=True,
            retries=(LOCK_RETRY,),
            # Another execution took it over first: it runs now.
            catches=(
                Catch((CONDITION_FAILED,), next=lock.busy_state, result_path="$.run_lock.taken"),
                to_notify,
            ),
            next=first_step,
        ),
        lock.busy_state: Fail(
            error=BUSY_ERROR,
            cause=(
                f"Another execution of the {pipeline} pipeline is running (it holds the run lock in "
                f"{lock.table_name}); this one stopped before changing anything. The next start goes on."
            ),
        ),
        lock.release_state: _release(
            lock, pipeline, next_state=None, on_error=Catch((ALL_ERRORS,), notify_failure, error_path)
        ),
    }


def release_on_failure(lock: RunLock, pipeline: str, failed: str) -> Task:
    """Give the lock back after a failure; when this execution does not hold it, there is nothing to do."""
    return _release(
        lock, pipeline, next_state=failed, on_error=Catch((ALL_ERRORS,), failed, "$.run_lock.release_error")
    )


def _release(lock: RunLock, pipeline: str, next_state: str | None, on_error: Catch) -> Task:
    return Task(
        comment="Give the run lock back, if this execution holds it",
        resource="arn:aws:states:::dynamodb:deleteItem",
        parameters={
            "TableName": lock.table_name,
            "Key": _key(pipeline),
            "ConditionExpression": "execution = :me",
            "ExpressionAttributeValues": {":me": {"S": JsonPath("$$.Execution.Id")}},
        },
        discard_result=True,
        retries=(LOCK_RETRY,),
        catches=(on_error,),
        next=next_state,
    )
