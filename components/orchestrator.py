"""Orchestrator: the Step Functions state machine that runs the pipeline, the schedule that starts it, and
the table of its run lock (one execution at a time, see components/run_lock.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.arns import Account, log_streams
from components.iam import ANY_RESOURCE, Statement, service_role
from components.log_group import LogSettings, log_group
from components.naming import PIPELINE_LAYER, Naming
from components.run_lock import LOCK_KEY, RunLock
from components.state_machine import Integrations, StepTarget, render_pipeline
from etl.pipeline import Pipeline, StepKind

# Schedules that could not start an execution are retried for an hour, then dropped (the next one comes).
SCHEDULE_RETRIES = 3
SCHEDULE_MAX_EVENT_AGE_SECONDS = 3600


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str


@dataclass
class OrchestratorArgs:
    pipeline: Pipeline
    naming: Naming
    account: Account
    state_machine_name: str
    # By step name: the function ARN or job name that runs the step.
    targets: Mapping[str, StepTarget[pulumi.Output[str]]]
    alert_topic_arn: pulumi.Input[str]
    log_level: str
    logs: LogSettings
    schedule: Schedule | None = None
    dataset_concurrency: int = 0  # dataset branches at once (0: all)


class Orchestrator(pulumi.ComponentResource):
    state_machine_arn: pulumi.Output[str]
    """ARN of the state machine that runs the pipeline."""
    definition: pulumi.Output[str]
    """The state machine's Amazon States Language definition (JSON)."""
    lock_table_name: pulumi.Output[str] | None
    """The DynamoDB table of the run lock (None when the pipeline may run concurrently)."""

    def __init__(self, name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:orchestrator:Orchestrator", name, None, opts)
        tags = args.naming.tags(PIPELINE_LAYER)
        lock_table = _lock_table(name, args, tags, self) if args.pipeline.exclusive else None
        # The vendedlogs prefix keeps CloudWatch Logs' resource policy small however many machines log.
        logs = log_group(
            f"{name}-logs",
            log_group_name=f"/aws/vendedlogs/states/{args.state_machine_name}",
            settings=args.logs,
            tags=tags,
            parent=self,
        )
        role = service_role(
            name,
            service="states",
            source_account=args.account.account_id,
            description=f"Runs the {args.pipeline.name} pipeline of {args.naming.prefix}",
            statements=_state_machine_statements(args, lock_table),
            tags=tags,
            parent=self,
        )
        self.definition = _definition(args, lock_table)
        state_machine = aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=args.state_machine_name,
            type="STANDARD",
            role_arn=role.role.arn,
            definition=self.definition,
            logging_configuration={
                "log_destination": log_streams(logs.arn),
                "include_execution_data": True,
                "level": args.log_level,
            },
            tracing_configuration={"enabled": True},
            tags=tags,
            # Step Functions checks on creation that the role may deliver logs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role.policy]),
        )
        if args.schedule is not None:
            _schedule(name, args, args.schedule, state_machine, tags, self)

        self.state_machine_arn = state_machine.arn
        self.lock_table_name = lock_table.name if lock_table is not None else None
        self.register_outputs(
            {
                "state_machine_arn": self.state_machine_arn,
                "definition": self.definition,
                "lock_table_name": self.lock_table_name,
            }
        )


def _lock_table(
    name: str, args: OrchestratorArgs, tags: Mapping[str, str], parent: pulumi.Resource
) -> aws.dynamodb.Table:
    """One item per pipeline, written and deleted by the state machine only: on-demand costs nothing idle."""
    return aws.dynamodb.Table(
        f"{name}-run-lock",
        name=f"{args.state_machine_name}-run-lock",
        billing_mode="PAY_PER_REQUEST",
        hash_key=LOCK_KEY,
        attributes=[{"name": LOCK_KEY, "type": "S"}],
        deletion_protection_enabled=args.logs.deletion_protection,  # the stack's deletionProtection
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _definition(args: OrchestratorArgs, lock_table: aws.dynamodb.Table | None) -> pulumi.Output[str]:
    names = list(args.targets)
    resolved = pulumi.Output.all(
        args.account.partition,
        args.alert_topic_arn,
        lock_table.name if lock_table is not None else "",
        *(args.targets[name].resource for name in names),
    )

    def render(values: list[str]) -> str:
        partition, topic_arn, lock_table_name, *resources = values
        targets = {
            name: StepTarget(resource, args.targets[name].timeout_seconds, args.targets[name].max_runs)
            for name, resource in zip(names, resources, strict=True)
        }
        integrations = Integrations(
            targets=targets,
            alert_topic_arn=topic_arn,
            alert_subject=f"{args.naming.prefix}: the {args.pipeline.name} pipeline failed",
            partition=partition,
            lock=RunLock(lock_table_name) if lock_table_name else None,
            max_concurrency=args.dataset_concurrency,
        )
        return render_pipeline(args.pipeline, integrations).to_json()

    return resolved.apply(render)


def _state_machine_statements(
    args: OrchestratorArgs, lock_table: aws.dynamodb.Table | None
) -> list[Statement]:
    functions = [args.targets[s.name].resource for s in args.pipeline.steps if s.kind is StepKind.FUNCTION]
    jobs = [
        args.account.glue_job(args.targets[s.name].resource)
        for s in args.pipeline.steps
        if s.kind is StepKind.SPARK_JOB
    ]
    return [
        Statement(
            sid="InvokeStepFunctions",
            actions=("lambda:InvokeFunction",),
            # Qualified ARNs too (versions, aliases), which is how Step Functions may call them.
            resources=(*functions, *(pulumi.Output.format("{0}:*", arn) for arn in functions)),
        ),
        Statement(
            sid="RunStepJobs",
            # .sync polls the run and stops it when the execution is stopped.
            actions=("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"),
            resources=tuple(jobs),
        ),
        Statement(sid="NotifyFailures", actions=("sns:Publish",), resources=(args.alert_topic_arn,)),
        *_run_lock_statements(args, lock_table),
        Statement(
            sid="DeliverExecutionLogs",
            # Log delivery for vended logs cannot be scoped to a resource (Step Functions documentation).
            actions=(
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            ),
            resources=(ANY_RESOURCE,),
        ),
        Statement(
            sid="WriteTraces",
            # X-Ray's write and sampling actions cannot be scoped to a resource.
            actions=(
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            ),
            resources=(ANY_RESOURCE,),
        ),
    ]


def _run_lock_statements(args: OrchestratorArgs, lock_table: aws.dynamodb.Table | None) -> list[Statement]:
    if lock_table is None:
        return []
    return [
        Statement(
            sid="HoldRunLock",
            actions=("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"),
            resources=(lock_table.arn,),
        ),
        Statement(
            sid="CheckRunLockHolder",
            # Whether the execution that holds the lock still runs: only executions of this state machine.
            actions=("states:DescribeExecution",),
            resources=args.account.state_machine_executions(args.state_machine_name),
        ),
    ]


def _schedule(
    name: str,
    args: OrchestratorArgs,
    schedule: Schedule,
    state_machine: aws.sfn.StateMachine,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> None:
    role = service_role(
        f"{name}-scheduler",
        service="scheduler",
        source_account=args.account.account_id,
        description=f"Starts the {args.pipeline.name} pipeline of {args.naming.prefix} on schedule",
        statements=[
            Statement(sid="StartPipeline", actions=("states:StartExecution",), resources=(state_machine.arn,))
        ],
        tags=tags,
        parent=parent,
    )
    aws.scheduler.Schedule(
        f"{name}-schedule",
        # The stack's prefix lets the deploy policy scope schedules to this stack.
        name=f"{args.naming.prefix}-{args.pipeline.name}",
        description=f"Starts the {args.pipeline.name} pipeline of {args.naming.prefix}",
        schedule_expression=schedule.expression,
        schedule_expression_timezone=schedule.timezone,
        flexible_time_window={"mode": "OFF"},
        target={
            "arn": state_machine.arn,
            "role_arn": role.role.arn,
            # The pipeline reads nothing from the input: the run id is the execution's name.
            "input": "{}",
            "retry_policy": {
                "maximum_retry_attempts": SCHEDULE_RETRIES,
                "maximum_event_age_in_seconds": SCHEDULE_MAX_EVENT_AGE_SECONDS,
            },
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role.policy]),
    )
