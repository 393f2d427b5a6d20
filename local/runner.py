"""The local runner: walks the pipeline definition and runs each step's entry point in this process.

It runs the per-dataset branch once for each declared dataset (one after the other; the state machine
runs them concurrently), then the steps after it. It resolves each step's inputs exactly as the state
machine does (run id and start time of the execution, the branch's dataset, the iteration of a repeated
step, fields of earlier results of the same branch), repeats a step while its result says so (up
to the same cap), gives the Spark jobs the same `--name value` arguments Glue gives them, and runs every
Spark step in one SparkSession, started when the first Spark step needs it. An exclusive pipeline holds
its data directory for the whole run.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl import pipeline, registry
from etl.audit.checks import AuditThresholds
from etl.bronze.deadline import Deadline
from etl.bronze.layout import new_run_id
from etl.bronze.settings import IngestionSettings
from etl.pipeline import BranchValue, ExecutionValue, Pipeline, Step, StepKind, StepResult, StepValue
from etl.timestamps import format_rfc3339, utc_now
from local.run_lock import hold_data_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class LocalLayout:
    """Where a local run keeps its data, under one directory."""

    data_dir: Path
    silver_database: str = "silver"
    gold_database: str = "gold"

    @property
    def bronze(self) -> Path:
        return self.data_dir / "bronze"

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def checkpoints(self) -> Path:
        return self.data_dir / "checkpoints"

    def settings(self) -> dict[str, str]:
        """Where the Spark steps find the data."""
        return {
            pipeline.BRONZE_ROOT: str(self.bronze),
            pipeline.SILVER_DATABASE: self.silver_database,
            pipeline.GOLD_DATABASE: self.gold_database,
            pipeline.CHECKPOINT_ROOT: str(self.checkpoints),
        }


@dataclass(frozen=True)
class StepRun:
    step: Step
    seconds: float
    result: Any  # the entry point's return value
    iteration: int = 1  # which run of a repeated step
    dataset: str | None = None  # the dataset of a per-dataset step


@dataclass
class PipelineRun:
    run_id: str
    started_at: datetime
    steps: list[StepRun] = field(default_factory=list)
    spark_start_seconds: float = 0.0  # creating the session, beside the steps before the first Spark one
    spark_wait_seconds: float = 0.0  # what of it the first Spark step waited for
    spark_step_reached: bool = False  # a Spark step began (it may have failed)

    def result(self, step_name: str, dataset: str | None = None) -> Any:
        """The result of the step's last run (as the state machine keeps it), of one dataset if given."""
        return self.results(step_name, dataset)[-1]

    def results(self, step_name: str, dataset: str | None = None) -> list[Any]:
        """The results of every run of the step, in order, of one dataset if given."""
        found = [
            run.result
            for run in self.steps
            if run.step.name == step_name and (dataset is None or run.dataset == dataset)
        ]
        if not found:
            raise KeyError(step_name if dataset is None else f"{step_name} of {dataset}")
        return found

    @property
    def datasets(self) -> list[str]:
        """The datasets the run went through, in order."""
        return list(dict.fromkeys(run.dataset for run in self.steps if run.dataset is not None))


class LocalRunner:
    def __init__(
        self,
        layout: LocalLayout,
        ingestion: IngestionSettings,
        spark_factory: Callable[[], SparkSession],
        progress: Callable[[str], None] = lambda _: None,
        function_budget_seconds: float | None = None,
        deadline_factory: Callable[[], Deadline] | None = None,
        audits: AuditThresholds | None = None,
        publish_anyway: bool = False,
        gold_refresh: str = "full",
    ) -> None:
        """`function_budget_seconds` bounds each run of a FUNCTION step, as Lambda's timeout does in AWS
        (None: no bound); `deadline_factory` replaces it (tests count pages instead of seconds).
        `audits`: the audits' thresholds (default: the stack config's defaults); `publish_anyway`: publish
        the run's branch even when audits fail; `gold_refresh`: how the Gold job refreshes a table whose
        Silver input changed (pipeline.GOLD_REFRESH_MODES, the stack config's `goldRefresh`)."""
        self.layout = layout
        self.audits = audits or AuditThresholds()
        self.publish_anyway = publish_anyway
        self.gold_refresh = gold_refresh
        self.ingestion = ingestion
        self._spark_factory = spark_factory
        self._spark: SparkSession | None = None
        self._starting: SparkStart | None = None
        self._progress = progress
        if deadline_factory is None:
            budget = function_budget_seconds
            deadline_factory = Deadline.never if budget is None else lambda: Deadline.after(budget)
        self._deadline = deadline_factory
        # The run under way, or the last one: the steps a failed run got through, for its summary.
        self.current: PipelineRun | None = None

    def run(
        self,
        definition: Pipeline = pipeline.PIPELINE,
        run_id: str | None = None,
        max_runs: int | None = None,
        datasets: Sequence[str] | None = None,
    ) -> PipelineRun:
        """Run the per-dataset branch for each of `datasets` (default: every declared one), then the other
        steps; a repeated step runs up to `max_runs` times (default: its own cap)."""
        names = list(datasets) if datasets is not None else [d.name for d in registry.datasets()]
        for name in names:
            registry.dataset(name)  # an unknown name stops the run before anything is fetched
        plan: list[tuple[Step, str | None]] = [(step, name) for name in names for step in definition.branch]
        plan += [(step, None) for step in definition.joined]
        with hold_data_dir(self.layout.data_dir) if definition.exclusive else contextlib.nullcontext():
            if definition.exclusive:
                remove_leftover_checkpoints(self.layout.checkpoints)
            started_at = utc_now()
            execution = PipelineRun(run_id=run_id or new_run_id(started_at), started_at=started_at)
            self.current = execution
            spark_later = any(step.kind is StepKind.SPARK_JOB for step, _ in plan)
            for position, (step, dataset) in enumerate(plan, start=1):
                what = step.description.replace("<dataset>", dataset or "<dataset>")
                self._progress(f"[{position}/{len(plan)}] {f'{dataset}: ' if dataset else ''}{what}")
                if self._spark is None and self._starting is None and spark_later:
                    # The JVM starts while the ingestion waits on the source: the first Spark step finds
                    # the session ready, or waits only for what is left of its start.
                    self._progress("      starting Spark meanwhile")
                    self._starting = SparkStart(self._spark_factory)
                iteration = 1
                while True:
                    result = self._run_step(step, execution, iteration, dataset)
                    if step.repeat is None or not step.repeat.again(_as_mapping(result), iteration, max_runs):
                        break
                    iteration += 1
                    self._progress(f"      again ({iteration}): the last run stopped at its deadline")
            return execution

    def _run_step(self, step: Step, execution: PipelineRun, iteration: int, dataset: str | None) -> Any:
        inputs = resolve_inputs(step, execution, iteration, dataset)
        if step.kind is StepKind.SPARK_JOB:
            execution.spark_step_reached = True
            spark = self._session(execution)
            began = time.perf_counter()
            result = run_spark_job(step, spark, {**self.step_settings(), **inputs})
        else:
            began = time.perf_counter()
            result = run_function(step, inputs, self.ingestion, self._deadline())
        execution.steps.append(StepRun(step, time.perf_counter() - began, result, iteration, dataset))
        return result

    def step_settings(self) -> dict[str, str]:
        """The deployment settings of the Spark steps, as the infrastructure sets them in AWS."""
        return {
            **self.layout.settings(),
            **self.audits.arguments(),
            pipeline.PUBLISH_ANYWAY: "true" if self.publish_anyway else "false",
            pipeline.GOLD_REFRESH: self.gold_refresh,
        }

    def kept_branches(self) -> dict[str, bool]:
        """The runs' branches the tables keep, oldest first, each with whether it is out of date (`main`
        moved on since it was made): a run that failed after a Spark step wrote to its branch leaves it
        unpublished (none known before the first Spark step)."""
        if self._spark is None:
            return {}
        from etl.audit.kept_branches import kept_branches, moved_on

        databases = (self._spark, self.layout.silver_database, self.layout.gold_database)
        return {branch: bool(moved_on(*databases, branch)) for branch in kept_branches(*databases)}

    def _session(self, execution: PipelineRun) -> SparkSession:
        if self._spark is None:
            starting, self._starting = self._starting or SparkStart(self._spark_factory), None
            began = time.perf_counter()
            self._spark = starting.session()
            execution.spark_wait_seconds = time.perf_counter() - began
            execution.spark_start_seconds = starting.seconds
        return self._spark


class SparkStart:
    """A SparkSession being created on a thread of its own (a daemon: a run that fails before its first
    Spark step does not wait for it to exit)."""

    def __init__(self, factory: Callable[[], SparkSession]) -> None:
        self._factory = factory
        self._done = threading.Event()
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        threading.Thread(target=self._start, name="spark-start", daemon=True).start()

    def _start(self) -> None:
        began = time.perf_counter()
        try:
            self._session = self._factory()
        except BaseException as error:  # handed to the step that needs the session
            self._error = error
        finally:
            self.seconds = time.perf_counter() - began
            self._done.set()

    def session(self) -> SparkSession:
        """The session, once created; the factory's error, raised here, if it failed."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session


def remove_leftover_checkpoints(checkpoints: Path) -> None:
    """Delete what runs killed mid-Silver left: with the data directory held, no other run uses them.

    (In AWS a lifecycle rule on the checkpoint prefix does this.)
    """
    if checkpoints.is_dir():
        for leftover in checkpoints.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


def resolve_inputs(
    step: Step, execution: PipelineRun, iteration: int = 1, dataset: str | None = None
) -> dict[str, Any]:
    """The step's inputs for this execution (and branch), as the state machine would pass them."""
    values: dict[str, Any] = {}
    for name, source in step.inputs.items():
        if source is ExecutionValue.RUN_ID:
            values[name] = execution.run_id
        elif source is ExecutionValue.STARTED_AT:
            values[name] = format_rfc3339(execution.started_at)
        elif source is StepValue.ITERATION:
            values[name] = iteration  # a JSON number in the state machine too
        elif source is BranchValue.DATASET:
            if dataset is None:
                raise ValueError(f"step {step.name} needs the dataset of its branch")
            values[name] = dataset
        elif isinstance(source, StepResult):
            values[name] = str(_as_mapping(execution.result(source.step, dataset))[source.field])
    return values


def run_function(step: Step, event: dict[str, Any], settings: IngestionSettings, deadline: Deadline) -> Any:
    """A FUNCTION step: its module's `run(event, settings, deadline)`, which the Lambda handler also calls."""
    module = importlib.import_module(step.entry_point)
    return module.run(event, settings, deadline)


def run_spark_job(step: Step, spark: SparkSession, arguments: Mapping[str, Any]) -> Any:
    """A SPARK_JOB step: its module's `run(spark, parse_args(argv))`, which its Glue `main` also calls."""
    module = importlib.import_module(step.entry_point)
    argv = [part for name in (*step.settings, *step.inputs) for part in (name, str(arguments[name]))]
    return module.run(spark, module.parse_args(argv))


def _as_mapping(result: Any) -> Mapping[str, Any]:
    if isinstance(result, Mapping):
        return result
    if is_dataclass(result) and not isinstance(result, type):
        return asdict(result)
    raise TypeError(f"a step result must be a mapping or a dataclass, got {type(result).__name__}")
