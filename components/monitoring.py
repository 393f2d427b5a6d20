"""Monitoring: the alarms and the dashboard of the pipeline, declared from its definition and the datasets.

Every step gets an alarm on failed runs and one on long runs; the state machine an alarm when no execution
succeeded for a while; every dataset an alarm per step that quarantines records, on the share it
quarantined. All of them notify the alert topic. Metric names, namespace and dimensions come from
etl/metrics.py, which the steps publish with, so the two cannot drift apart. A step or dataset added to
the definitions gets its alarms and its place on the dashboard with no change here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import MonitoringConfig
from components.naming import PIPELINE_LAYER, Naming
from etl import metrics
from etl.pipeline import Pipeline as PipelineDefinition
from etl.pipeline import Step
from etl.tables import Layer

# Periods the step alarms look at: a run publishes its metrics once, when it ends.
STEP_PERIOD_SECONDS = 300
QUARANTINE_PERIOD_SECONDS = 3600
FRESHNESS_PERIOD_SECONDS = 3600
# One point per hour on the dashboard's graphs.
GRAPH_PERIOD_SECONDS = 3600
STATES_NAMESPACE = "AWS/States"
# The dashboard's grid is 24 units wide.
DASHBOARD_WIDTH = 24
WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6


@dataclass
class MonitoringArgs:
    pipeline: PipelineDefinition
    naming: Naming
    config: MonitoringConfig
    state_machine_arn: pulumi.Input[str]
    alert_topic_arn: pulumi.Input[str]
    region: pulumi.Input[str]
    # Each step's timeout, by step name: the default duration bound is a share of it.
    timeout_seconds: Mapping[str, int]
    datasets: Sequence[str]
    # The tables of each layer, by name: a step publishing metrics.TABLE_ROWS has one metric per table.
    tables: Mapping[Layer, Sequence[str]]


def duration_bound_seconds(step: Step, config: MonitoringConfig, timeout_seconds: int) -> int:
    """How long a run of `step` may take before its duration alarm fires."""
    if step.name in config.duration_minutes:
        return config.duration_minutes[step.name] * 60
    return max(1, timeout_seconds * config.duration_percent // 100)


def quarantining_steps(pipeline: PipelineDefinition) -> tuple[Step, ...]:
    """The per-dataset steps that publish both the records they read and those they quarantined."""
    needed = {metrics.RECORDS_READ, metrics.RECORDS_QUARANTINED}
    return tuple(step for step in pipeline.branch if needed <= set(step.metrics))


def published_counts(step: Step, tables: Mapping[Layer, Sequence[str]]) -> tuple[str, ...]:
    """The count metrics a step publishes, with TABLE_ROWS expanded to the tables it writes."""
    names: list[str] = []
    for name in step.metrics:
        if name == metrics.TABLE_ROWS:
            names += [metrics.table_rows(table) for layer in step.writes for table in tables.get(layer, ())]
        else:
            names.append(name)
    return tuple(names)


class Monitoring(pulumi.ComponentResource):
    alarm_names: pulumi.Output[list[str]]
    """Names of every alarm of the pipeline."""
    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:monitoring:Monitoring", name, None, opts)
        self._name = name
        self._args = args
        self._namespace = metrics.namespace_of(args.naming.stack)
        alarms = [
            *(alarm for step in args.pipeline.steps for alarm in self._step_alarms(step)),
            self._freshness_alarm(),
            *(
                self._quarantine_alarm(step, dataset)
                for step in quarantining_steps(args.pipeline)
                for dataset in args.datasets
            ),
        ]

        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{args.naming.prefix}-{args.pipeline.name}",
            dashboard_body=pulumi.Output.all(args.region, args.state_machine_arn).apply(
                lambda values: json.dumps(self._dashboard(str(values[0]), str(values[1])))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alarm_names = pulumi.Output.all(*(alarm.name for alarm in alarms)).apply(list)
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"alarm_names": self.alarm_names, "dashboard_name": self.dashboard_name})

    def _alarm(self, role: str, *, description: str, **settings: Any) -> aws.cloudwatch.MetricAlarm:
        settings.setdefault("evaluation_periods", 1)
        settings.setdefault("treat_missing_data", "notBreaching")
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{role}",
            name=f"{self._args.naming.prefix}-{role}",
            alarm_description=description,
            alarm_actions=[self._args.alert_topic_arn],
            tags=self._args.naming.tags(PIPELINE_LAYER),
            opts=pulumi.ResourceOptions(parent=self),
            **settings,
        )

    def _step_alarms(self, step: Step) -> tuple[aws.cloudwatch.MetricAlarm, aws.cloudwatch.MetricAlarm]:
        """A failed run of the step, and a run longer than its bound."""
        role = step.name.lower()
        bound = duration_bound_seconds(step, self._args.config, self._args.timeout_seconds[step.name])
        per_step = {"namespace": self._namespace, "dimensions": {metrics.STEP: step.name}}
        failures = self._alarm(
            f"{role}-failures",
            description=f"A run of the {step.name} step failed",
            metric_name=metrics.FAILURES,
            statistic="Sum",
            period=STEP_PERIOD_SECONDS,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            **per_step,
        )
        duration = self._alarm(
            f"{role}-duration",
            description=f"A run of the {step.name} step took longer than {bound} seconds",
            metric_name=metrics.DURATION,
            statistic="Maximum",
            period=STEP_PERIOD_SECONDS,
            comparison_operator="GreaterThanThreshold",
            threshold=bound,
            **per_step,
        )
        return failures, duration

    def _freshness_alarm(self) -> aws.cloudwatch.MetricAlarm:
        hours = self._args.config.freshness_hours
        # One period per hour, every one of them without a success: `Sum over N hours < 1`, within the
        # longest period an alarm accepts. No data at all (no execution) counts as no success.
        return self._alarm(
            "freshness",
            description=f"No execution of the pipeline succeeded in {hours} hours",
            metric_name="ExecutionsSucceeded",
            namespace=STATES_NAMESPACE,
            dimensions={"StateMachineArn": self._args.state_machine_arn},
            statistic="Sum",
            period=FRESHNESS_PERIOD_SECONDS,
            evaluation_periods=hours,
            datapoints_to_alarm=hours,
            comparison_operator="LessThanThreshold",
            threshold=1,
            treat_missing_data="breaching",
        )

    def _quarantine_alarm(self, step: Step, dataset: str) -> aws.cloudwatch.MetricAlarm:
        percent = self._args.config.quarantine_percent
        dimensions = {metrics.DATASET: dataset, metrics.STEP: step.name}
        return self._alarm(
            f"{step.name.lower()}-{dataset}-quarantine-rate",
            description=f"The {step.name} step quarantined more than {percent}% of the {dataset} records",
            comparison_operator="GreaterThanThreshold",
            threshold=percent,
            metric_queries=[
                {
                    "id": "rate",
                    "expression": "100 * quarantined / records",
                    "label": f"{dataset}: quarantined records, % of those read",
                    "return_data": True,
                },
                *(
                    {
                        "id": query_id,
                        "metric": {
                            "metric_name": metric_name,
                            "namespace": self._namespace,
                            "dimensions": dimensions,
                            "period": QUARANTINE_PERIOD_SECONDS,
                            "stat": "Sum",
                        },
                    }
                    for query_id, metric_name in (
                        ("quarantined", metrics.RECORDS_QUARANTINED),
                        ("records", metrics.RECORDS_READ),
                    )
                ),
            ],
        )

    def _dashboard(self, region: str, state_machine_arn: str) -> dict[str, Any]:
        """A row per dataset (its steps' counts and durations), then the pipeline's rows."""
        args = self._args
        rows: list[list[dict[str, Any]]] = []
        for dataset in args.datasets:
            rows.append(
                [
                    self._graph(
                        f"{dataset}: {step.name}",
                        [
                            [metric, metrics.DATASET, dataset, metrics.STEP, step.name]
                            for metric in step.metrics
                        ],
                        "Sum",
                        region,
                    )
                    for step in args.pipeline.branch
                    if step.metrics
                ]
                + [
                    self._graph(
                        f"{dataset}: duration (seconds)",
                        [
                            [metrics.DURATION, metrics.DATASET, dataset, metrics.STEP, step.name]
                            for step in args.pipeline.branch
                        ],
                        "Maximum",
                        region,
                    )
                ]
            )
        steps = args.pipeline.steps
        rows.append(
            [
                self._graph(
                    "Executions",
                    [
                        [STATES_NAMESPACE, outcome, "StateMachineArn", state_machine_arn]
                        for outcome in ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut")
                    ],
                    "Sum",
                    region,
                    namespaced=True,
                ),
                self._graph(
                    "Failed runs per step",
                    [[metrics.FAILURES, metrics.STEP, step.name] for step in steps],
                    "Sum",
                    region,
                ),
                self._graph(
                    "Duration per step (seconds)",
                    [[metrics.DURATION, metrics.STEP, step.name] for step in steps],
                    "Maximum",
                    region,
                ),
            ]
        )
        rows.append(
            [
                self._graph(
                    step.name,
                    [[metric, metrics.STEP, step.name] for metric in published_counts(step, args.tables)],
                    "Maximum",
                    region,
                )
                for step in args.pipeline.joined
                if step.metrics
            ]
        )
        return {"widgets": _laid_out([row for row in rows if row])}

    def _graph(
        self,
        title: str,
        lines: list[list[str]],
        stat: str,
        region: str,
        namespaced: bool = False,
    ) -> dict[str, Any]:
        return {
            "type": "metric",
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stat": stat,
                "period": GRAPH_PERIOD_SECONDS,
                "metrics": lines if namespaced else [[self._namespace, *line] for line in lines],
            },
        }


def _laid_out(rows: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The widgets with their places: each row starts on a new line, wrapping at the grid's width."""
    widgets = []
    y = 0
    for row in rows:
        x = 0
        for widget in row:
            if x + WIDGET_WIDTH > DASHBOARD_WIDTH:
                x, y = 0, y + WIDGET_HEIGHT
            widgets.append({**widget, "x": x, "y": y, "width": WIDGET_WIDTH, "height": WIDGET_HEIGHT})
            x += WIDGET_WIDTH
        y += WIDGET_HEIGHT
    return widgets
