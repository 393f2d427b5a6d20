"""The local runner walks the pipeline definition with the arguments the state machine would pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from etl import pipeline
from etl.bronze.layout import BronzeLayout, read_watermark, write_watermark
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.pipeline import ExecutionValue, Repeat, Step, StepKind, StepResult, StepValue
from etl.storage import LocalStore
from local.run_lock import RunInProgress, hold_data_dir
from local.runner import LocalLayout, LocalRunner, PipelineRun, StepRun, resolve_inputs
from tests import scripted_spark_start, scripted_step


@dataclass
class FakeSummary:
    run_id: str


def test_inputs_come_from_the_execution_and_earlier_results() -> None:
    execution = PipelineRun(run_id="exec-1", started_at=datetime(2026, 11, 26, 8, 0, 0, 5, tzinfo=UTC))
    assert resolve_inputs(pipeline.BRONZE, execution, iteration=3, dataset="orders") == {
        "run_id": "exec-1",
        "started_at": "2026-11-26T08:00:00.000005Z",
        "iteration": 3,
        "dataset": "orders",
    }
    execution.steps.append(
        StepRun(pipeline.BRONZE, 1.0, {"run_id": "exec-1", "manifest": "/m/exec-1.json"}, dataset="orders")
    )
    execution.steps.append(
        StepRun(pipeline.BRONZE, 1.0, {"run_id": "exec-1", "manifest": "/m/other.json"}, dataset="other")
    )
    assert resolve_inputs(pipeline.SILVER, execution, dataset="orders") == {
        "--dataset": "orders",
        "--run-id": "exec-1",
        "--manifest": "/m/exec-1.json",
        "--branch": "exec-1",
    }

    step = Step(
        "Next", StepKind.SPARK_JOB, "x", "", MappingProxyType({"--a": StepResult("Silver", "run_id")})
    )
    execution.steps.append(StepRun(pipeline.SILVER, 1.0, FakeSummary(run_id="from-dataclass")))
    assert resolve_inputs(step, execution) == {"--a": "from-dataclass"}


def test_local_settings_cover_every_setting_the_spark_steps_read(tmp_path: Path) -> None:
    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), dataset="eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=lambda: None)  # type: ignore[arg-type,return-value]
    spark_steps = [s for s in pipeline.PIPELINE.steps if s.kind is StepKind.SPARK_JOB]
    needed = {setting for step in spark_steps for setting in step.settings}
    assert needed <= set(runner.step_settings())
    assert runner.step_settings()[pipeline.BRONZE_ROOT] == str(tmp_path / "bronze")
    assert runner.step_settings()[pipeline.GOLD_REFRESH] == "full"
    incremental = LocalRunner(LocalLayout(tmp_path), ingestion, lambda: None, gold_refresh="incremental")  # type: ignore[arg-type,return-value]
    assert incremental.step_settings()[pipeline.GOLD_REFRESH] == "incremental"


def test_the_pipeline_is_ingest_then_silver_then_gold_then_the_audits() -> None:
    assert [step.name for step in pipeline.PIPELINE.steps] == ["Bronze", "Silver", "Gold", "Audit"]
    assert pipeline.BRONZE.inputs["run_id"] is ExecutionValue.RUN_ID


def test_a_step_cannot_read_a_result_no_earlier_step_returns() -> None:
    bad = Step("Silver", StepKind.SPARK_JOB, "x", "", MappingProxyType({"--x": StepResult("Gold", "rows")}))
    with pytest.raises(ValueError, match="which no earlier step returns"):
        pipeline.Pipeline("p", (pipeline.BRONZE, bad), per_dataset=2)


def test_a_repeated_step_runs_again_while_its_result_has_more_up_to_its_cap(tmp_path: Path) -> None:
    fetch = Step(
        "Fetch",
        StepKind.FUNCTION,
        "tests.scripted_step",
        "fetch",
        MappingProxyType({"run_id": ExecutionValue.RUN_ID, "iteration": StepValue.ITERATION}),
        result_fields=("run_id", "has_more"),
        repeat=Repeat("has_more", max_runs=4),
    )
    definition = pipeline.Pipeline("p", (fetch,))
    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), "eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=lambda: None)  # type: ignore[arg-type,return-value]

    scripted_step.events.clear()
    scripted_step.has_more[:] = [True, True, False, True]
    caught_up = runner.run(definition, run_id="exec")
    assert [e["iteration"] for e in scripted_step.events] == [1, 2, 3]
    assert [(r.iteration, r.result["run_id"]) for r in caught_up.steps] == [
        (1, "exec-001"),
        (2, "exec-002"),
        (3, "exec-003"),
    ]
    assert caught_up.result("Fetch")["run_id"] == "exec-003"  # later steps read the last run

    scripted_step.events.clear()
    scripted_step.has_more[:] = [True] * 10
    capped = runner.run(definition, run_id="next")
    assert [e["iteration"] for e in scripted_step.events] == [1, 2, 3, 4]
    assert capped.result("Fetch")["has_more"] is True
    scripted_step.events.clear()
    assert len(runner.run(definition, run_id="again", max_runs=2).steps) == 2


def test_an_iteration_input_needs_a_repeated_step() -> None:
    once = Step("Once", StepKind.FUNCTION, "x", "", MappingProxyType({"n": StepValue.ITERATION}))
    with pytest.raises(ValueError, match="never repeats"):
        pipeline.Pipeline("p", (once,))
    unknown = Step("Loop", StepKind.FUNCTION, "x", "", repeat=Repeat("more"), result_fields=("other",))
    with pytest.raises(ValueError, match="does not return"):
        pipeline.Pipeline("p", (unknown,))


HOLD = """
import sys, time
from pathlib import Path
from local.run_lock import hold_data_dir
with hold_data_dir(Path(sys.argv[1]), command="lakehouse run --data-dir held"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding tmp_path/data, as a run in progress does."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield holder
    holder.kill()
    holder.wait()


def test_a_second_run_on_a_held_data_directory_fails_at_once_naming_the_holder(
    tmp_path: Path, held: subprocess.Popen[str]
) -> None:
    with pytest.raises(RunInProgress) as raised, hold_data_dir(tmp_path / "data"):
        pass
    message = str(raised.value)
    assert f"pid {held.pid} on {os.uname().nodename}" in message
    assert "command 'lakehouse run --data-dir held'" in message
    assert "started 20" in message

    # A holder that dies, even by SIGKILL, leaves the directory free.
    held.send_signal(signal.SIGKILL)
    held.wait()
    with hold_data_dir(tmp_path / "data", command="second"):
        assert "second" in (tmp_path / "data" / ".lakehouse.lock").read_text()


def test_the_runner_holds_its_data_directory_and_lets_it_go_after_a_failure(tmp_path: Path) -> None:
    failing = Step("Fail", StepKind.FUNCTION, "tests.no_such_module", "")
    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), "eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ModuleNotFoundError):
        runner.run(pipeline.Pipeline("p", (failing,)))
    with hold_data_dir(tmp_path):  # free again
        pass


def test_a_run_deletes_the_checkpoints_a_killed_run_left_behind(tmp_path: Path) -> None:
    layout = LocalLayout(tmp_path)
    leftover = layout.checkpoints / "killed-run" / "rdd-7"
    leftover.mkdir(parents=True)
    (leftover / "part-00000").write_bytes(b"rows")
    failing = Step("Fail", StepKind.FUNCTION, "tests.no_such_module", "")
    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), "eu")
    runner = LocalRunner(layout, ingestion, spark_factory=lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ModuleNotFoundError):
        runner.run(pipeline.Pipeline("p", (failing,)))
    assert list(layout.checkpoints.iterdir()) == []


def test_lakehouse_run_on_a_held_data_directory_says_who_holds_it(
    tmp_path: Path, held: subprocess.Popen[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "local", "run", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"another run is using {tmp_path / 'data'}: pid {held.pid}" in line
    assert not (tmp_path / "data" / "sample_source.json").exists()  # it changed nothing


def test_a_step_after_the_branch_cannot_read_one_datasets_result_nor_its_dataset() -> None:
    reads_silver = Step(
        "Gold", StepKind.SPARK_JOB, "x", "", MappingProxyType({"--x": StepResult("Silver", "runs")})
    )
    with pytest.raises(ValueError, match="which no earlier step returns"):
        pipeline.Pipeline("p", (pipeline.BRONZE, pipeline.SILVER, reads_silver), per_dataset=2)
    with pytest.raises(ValueError, match="runs after the per-dataset branch"):
        pipeline.Pipeline("p", (pipeline.BRONZE, pipeline.SILVER, pipeline.GOLD), per_dataset=0)


@pytest.mark.parametrize(
    "command",
    [
        ["rebuild"],
        ["bronze", "rewind", "--to", "2026-01-01T00:00:00Z", "--dataset", "orders"],
        ["bronze", "repair", "r1", "--dataset", "orders"],
    ],
    ids=["rebuild", "rewind", "repair"],
)
def test_the_recovery_commands_wait_for_no_run_they_refuse_a_held_data_directory(
    tmp_path: Path, held: subprocess.Popen[str], command: list[str]
) -> None:
    bronze = tmp_path / "data" / "bronze"
    store = LocalStore(bronze)
    write_watermark(store, BronzeLayout("orders"), datetime(2026, 1, 5, tzinfo=UTC), "r1")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "local", *command, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"another run is using {tmp_path / 'data'}: pid {held.pid}" in line
    assert read_watermark(store, BronzeLayout("orders")) == datetime(2026, 1, 5, tzinfo=UTC)  # untouched


def spark_start_pipeline() -> pipeline.Pipeline:
    source = Step(
        "Source",
        StepKind.FUNCTION,
        "tests.scripted_spark_start",
        "",
        MappingProxyType({"run_id": ExecutionValue.RUN_ID}),
    )
    spark_step = Step("Spark", StepKind.SPARK_JOB, "tests.scripted_spark_start_job", "")
    return pipeline.Pipeline("p", (source, spark_step))


@pytest.fixture
def spark_start_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "tests.scripted_spark_start_job", scripted_spark_start.SparkStep)
    scripted_spark_start.spark_started.clear()
    scripted_spark_start.saw_spark_start.clear()
    scripted_spark_start.sessions.clear()
    yield


def test_spark_starts_beside_the_steps_before_the_first_spark_step(
    tmp_path: Path, spark_start_steps: None
) -> None:
    def start_spark() -> str:
        time.sleep(0.3)  # a JVM takes seconds to start
        scripted_spark_start.spark_started.set()
        return "the session"

    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), "eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=start_spark)  # type: ignore[arg-type]

    executed = runner.run(spark_start_pipeline(), run_id="exec")

    # The source step was still running when Spark started: started lazily, it would have timed out.
    assert scripted_spark_start.saw_spark_start == [True]
    assert scripted_spark_start.sessions == ["the session"]
    # Its start ran while the source step waited: the Spark step hardly waited for it.
    assert executed.spark_start_seconds >= 0.3
    assert executed.spark_wait_seconds < 0.2


def test_a_spark_start_that_fails_fails_the_first_spark_step_with_its_error(
    tmp_path: Path, spark_start_steps: None
) -> None:
    def no_java() -> str:
        scripted_spark_start.spark_started.set()
        raise RuntimeError("no Java here")

    ingestion = IngestionSettings(SourceSettings("http://127.0.0.1:9"), str(tmp_path / "b"), "eu")
    runner = LocalRunner(LocalLayout(tmp_path), ingestion, spark_factory=no_java)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="no Java here"):
        runner.run(spark_start_pipeline(), run_id="exec")
    assert [s.step.name for s in runner.current.steps] == ["Source"]  # type: ignore[union-attr]
