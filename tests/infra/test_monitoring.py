"""Alarms and dashboard, declared from the pipeline definition and the datasets, under mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from etl import metrics, registry
from etl.pipeline import PIPELINE, StepKind
from tests.infra.stack_run import PROJECT_ROOT
from tests.infra.stacks import StackRun

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
# Read from the stack files by hand: (step -> seconds) a run may take, freshness hours, quarantine %.
# dev: 90% of each timeout (Bronze 300 s, Glue 60 min); prod: 80% of Bronze's 900 s and of Glue's 240 min,
# Silver and Gold named.
DURATION_BOUNDS = {
    "dev": {"Bronze": 270, "Silver": 3240, "Gold": 3240, "Audit": 3240},
    "prod": {"Bronze": 720, "Silver": 7200, "Gold": 3600, "Audit": 11520},
}
FRESHNESS_HOURS = {"dev": 168, "prod": 26}
QUARANTINE_PERCENT = {"dev": 10, "prod": 5}

# Runs the whole program for dev with one more step after Gold; nothing else is changed.
WITH_EXTRA_STEP = """
import dataclasses, json, sys
from pathlib import Path
from etl import pipeline
from etl.tables import Layer
check = dataclasses.replace(pipeline.GOLD, name="Check", description="Check: Gold", reads=(Layer.GOLD,))
pipeline.PIPELINE = dataclasses.replace(pipeline.PIPELINE, steps=(*pipeline.PIPELINE.steps, check))
from tests.infra import stack_run
document = stack_run.run("dev")
Path(sys.argv[1]).write_text(json.dumps(document, default=stack_run._json_default), encoding="utf-8")
"""


def alarms(stack: StackRun) -> dict[str, dict[str, Any]]:
    found = {}
    for alarm in stack.of_type(ALARM):
        assert alarm.parent_type == "lakehouse:monitoring:Monitoring"
        found[alarm.inputs["name"]] = alarm.inputs
    return found


def assert_notifies_the_alert_topic(stack: StackRun, alarm: dict[str, Any]) -> None:
    assert alarm["alarmActions"] == [stack.outputs["alertTopicArn"]]


def step_alarms(stack: StackRun, step: str) -> tuple[dict[str, Any], dict[str, Any]]:
    declared = alarms(stack)
    prefix = f"lakehouse-{stack.stack}-{step.lower()}"
    return declared[f"{prefix}-failures"], declared[f"{prefix}-duration"]


def test_every_step_has_an_alarm_on_failed_runs_and_one_on_long_runs(stack: StackRun) -> None:
    assert [step.name for step in PIPELINE.steps] == list(DURATION_BOUNDS[stack.stack])
    for step in PIPELINE.steps:
        failures, duration = step_alarms(stack, step.name)
        for alarm in (failures, duration):
            assert alarm["namespace"] == f"Lakehouse/{stack.stack}"
            assert alarm["dimensions"] == {"Step": step.name}
            assert_notifies_the_alert_topic(stack, alarm)
            assert alarm["treatMissingData"] == "notBreaching"  # no run, no alarm
        assert (failures["metricName"], failures["statistic"]) == ("Failures", "Sum")
        assert (failures["comparisonOperator"], failures["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
        assert (duration["metricName"], duration["statistic"]) == ("DurationSeconds", "Maximum")
        assert duration["comparisonOperator"] == "GreaterThanThreshold"
        assert duration["threshold"] == DURATION_BOUNDS[stack.stack][step.name]


def test_a_freshness_alarm_fires_when_no_execution_succeeded_for_the_configured_hours(
    stack: StackRun,
) -> None:
    alarm = alarms(stack)[f"lakehouse-{stack.stack}-freshness"]
    hours = FRESHNESS_HOURS[stack.stack]
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/States", "ExecutionsSucceeded")
    assert alarm["dimensions"] == {"StateMachineArn": stack.outputs["stateMachineArn"]}
    assert (alarm["statistic"], alarm["period"]) == ("Sum", 3600)
    # Every one of the last N hours without a success: the sum over N hours is below 1.
    assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == hours
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", 1)
    assert alarm["treatMissingData"] == "breaching"  # no execution at all is no success
    assert alarm["period"] * alarm["evaluationPeriods"] <= 7 * 24 * 3600  # what CloudWatch accepts
    assert_notifies_the_alert_topic(stack, alarm)


def test_each_dataset_has_a_quarantine_rate_alarm_at_the_configured_share(stack: StackRun) -> None:
    declared = alarms(stack)
    names = [dataset.name for dataset in registry.datasets()]
    assert len(names) >= 2
    for dataset in names:
        alarm = declared[f"lakehouse-{stack.stack}-silver-{dataset}-quarantine-rate"]
        assert (alarm["comparisonOperator"], alarm["threshold"]) == (
            "GreaterThanThreshold",
            QUARANTINE_PERCENT[stack.stack],
        )
        queries = {query["id"]: query for query in alarm["metricQueries"]}
        assert queries["rate"]["expression"] == "100 * quarantined / records"
        assert queries["rate"]["returnData"] is True
        for query_id, metric_name in (("quarantined", "RecordsQuarantined"), ("records", "RecordsRead")):
            metric = queries[query_id]["metric"]
            assert (metric["namespace"], metric["metricName"]) == (f"Lakehouse/{stack.stack}", metric_name)
            assert metric["dimensions"] == {"Dataset": dataset, "Step": "Silver"}
            assert metric["stat"] == "Sum"
        assert_notifies_the_alert_topic(stack, alarm)
    quarantine_alarms = [name for name in declared if name.endswith("-quarantine-rate")]
    assert len(quarantine_alarms) == len(names)


def test_the_dashboard_has_a_row_per_dataset_and_the_pipelines_rows(stack: StackRun) -> None:
    (dashboard,) = stack.of_type(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == f"lakehouse-{stack.stack}-medallion"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    namespace = f"Lakehouse/{stack.stack}"
    lines = [line for widget in widgets for line in widget["properties"]["metrics"]]
    assert all(widget["properties"]["region"] == "eu-west-1" for widget in widgets)
    for dataset in registry.datasets():
        rows = {widget["y"] for widget in widgets if widget["properties"]["title"].startswith(dataset.name)}
        assert len(rows) == 1, f"{dataset.name} should have one row, found {rows}"
        for metric_name in (
            "RecordsIngested",
            "RecordsRead",
            "RecordsAccepted",
            "RecordsQuarantined",
            "RecordsMerged",
            "DurationSeconds",
        ):
            assert [namespace, metric_name, "Dataset", dataset.name, "Step", "Silver"] in lines or [
                namespace,
                metric_name,
                "Dataset",
                dataset.name,
                "Step",
                "Bronze",
            ] in lines, f"{dataset.name}: {metric_name} missing"
    for table in registry.gold_tables():
        assert [namespace, f"Rows.{table.name}", "Step", "Gold"] in lines
    for step in PIPELINE.steps:
        assert [namespace, "Failures", "Step", step.name] in lines
        assert [namespace, "DurationSeconds", "Step", step.name] in lines
    assert ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", stack.outputs["stateMachineArn"]] in lines
    # Laid out on the 24-wide grid without overlapping.
    cells = [
        (w["x"] + dx, w["y"] + dy) for w in widgets for dx in range(w["width"]) for dy in range(w["height"])
    ]
    assert len(cells) == len(set(cells))
    assert all(w["x"] + w["width"] <= 24 for w in widgets)


def test_the_steps_are_told_where_to_publish(stack: StackRun) -> None:
    namespace = f"Lakehouse/{stack.stack}"
    (function,) = stack.of_type("aws:lambda/function:Function")
    assert function.inputs["environment"]["variables"][metrics.ENV_METRICS_NAMESPACE] == namespace
    jobs = stack.of_type("aws:glue/job:Job")
    assert len(jobs) == sum(1 for step in PIPELINE.steps if step.kind is StepKind.SPARK_JOB)
    assert all(job.inputs["defaultArguments"][metrics.METRICS_NAMESPACE] == namespace for job in jobs)


@pytest.fixture(scope="module")
def with_extra_step(tmp_path_factory: pytest.TempPathFactory) -> StackRun:
    output = tmp_path_factory.mktemp("extra-step") / "dev.json"
    completed = subprocess.run(
        [sys.executable, "-c", WITH_EXTRA_STEP, str(output)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return StackRun.from_json(Path(output).read_text(encoding="utf-8"))


def test_a_step_added_to_the_pipeline_gets_its_alarms_and_its_place_on_the_dashboard(
    dev: StackRun, with_extra_step: StackRun
) -> None:
    assert "Check" in {state for state in with_extra_step.state_machine_definition()["States"]}
    failures, duration = step_alarms(with_extra_step, "Check")
    assert failures["dimensions"] == duration["dimensions"] == {"Step": "Check"}
    assert duration["threshold"] == 3240  # 90% of dev's 60-minute Glue timeout
    added = set(alarms(with_extra_step)) - set(alarms(dev))
    assert added == {"lakehouse-dev-check-failures", "lakehouse-dev-check-duration"}
    (dashboard,) = with_extra_step.of_type(DASHBOARD)
    body = json.loads(dashboard.inputs["dashboardBody"])
    lines = [line for widget in body["widgets"] for line in widget["properties"]["metrics"]]
    assert ["Lakehouse/dev", "DurationSeconds", "Step", "Check"] in lines
