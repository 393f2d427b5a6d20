"""The local runner walks the pipeline definition with the arguments the state machine would pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from etl import pipeline
from etl.extract.settings import IngestionSettings, SourceSettings
from etl.pipeline import ExecutionValue, Step, StepKind, StepResult
from etl.runner import LocalLayout, LocalRunner, PipelineRun, StepRun, resolve_inputs


@dataclass
class FakeSummary:
    run_id: str


def test_inputs_come_from_the_execution_and_earlier_results() -> None:
    execution = PipelineRun(run_id="exec-1", started_at=datetime(2026, 11, 26, 8, 0, 0, 5, tzinfo=UTC))
    assert resolve_inputs(pipeline.INGEST, execution) == {
        "run_id": "exec-1",
        "started_at": "2026-11-26T08:00:00.000005Z",
    }
    execution.steps.append(StepRun(pipeline.INGEST, 1.0, {"run_id": "exec-1", "manifest": "/m/exec-1.json"}))
    assert resolve_inputs(pipeline.SILVER, execution) == {
        "--run-id": "exec-1",
        "--manifest": "/m/exec-1.json",
    }

    step = Step(
        "Next", StepKind.SPARK_JOB, "x", "", MappingProxyType({"--a": StepResult("Silver", "run_id")})
    )
    execution.steps.append(StepRun(pipeline.SILVER, 1.0, FakeSummary(run_id="from-dataclass")))
    assert resolve_inputs(step, execution) == {"--a": "from-dataclass"}


def test_local_settings_cover_every_setting_the_spark_steps_read(tmp_path: Path) -> None:
    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), dataset="eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=lambda: None)  # type: ignore[arg-type,return-value]
    spark_steps = [s for s in pipeline.ORDERS_PIPELINE.steps if s.kind is StepKind.SPARK_JOB]
    needed = {setting for step in spark_steps for setting in step.settings}
    assert needed <= set(runner.step_settings())
    assert runner.step_settings()[pipeline.BRONZE_ROOT] == str(tmp_path / "bronze")
    assert runner.step_settings()[pipeline.DATASET] == "eu"


def test_the_pipeline_is_ingest_then_silver_then_gold() -> None:
    assert [step.name for step in pipeline.ORDERS_PIPELINE.steps] == ["Ingest", "Silver", "Gold"]
    assert pipeline.INGEST.inputs["run_id"] is ExecutionValue.RUN_ID


def test_a_step_cannot_read_a_result_no_earlier_step_returns() -> None:
    bad = Step("Silver", StepKind.SPARK_JOB, "x", "", MappingProxyType({"--x": StepResult("Gold", "rows")}))
    with pytest.raises(ValueError, match="which no earlier step returns"):
        pipeline.Pipeline("p", (pipeline.INGEST, bad))
