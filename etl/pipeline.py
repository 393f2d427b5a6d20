"""The pipeline definition: which steps run, in which order, with which arguments.

The Step Functions state machine (components/state_machine.py) is rendered from these objects and the
local runner (local/runner.py) walks them, so AWS and the local run execute the same steps with the same
arguments. This module is plain Python: the Pulumi program imports it without Spark, the jobs without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from etl import metrics
from etl.audit.checks import AuditThresholds
from etl.tables import Layer


class StepKind(Enum):
    """Where a step runs in AWS; locally every kind runs in the runner's process."""

    FUNCTION = "function"  # a Lambda function, invoked with a JSON event
    SPARK_JOB = "spark_job"  # a Glue job, started with `--name value` arguments


class ExecutionValue(Enum):
    """A value that belongs to the whole pipeline run (`$$.Execution.*` in Step Functions)."""

    RUN_ID = "run_id"
    STARTED_AT = "started_at"


class BranchValue(Enum):
    """A value of the per-dataset branch the step runs in (see Pipeline.per_dataset)."""

    DATASET = "dataset"  # the dataset's name, as declared under datasets/


class StepValue(Enum):
    """A value of one run of the step itself, within the pipeline run."""

    # 1 on the first run of a repeated step, then 2, 3, ... (a counter kept by the state machine).
    ITERATION = "iteration"


@dataclass(frozen=True)
class StepResult:
    """A field of the result of an earlier step, e.g. the ingestion run's id."""

    step: str
    field: str


Input = ExecutionValue | StepResult | StepValue | BranchValue


# Iterations are three digits in run ids (`<execution>-001`), so that an execution's runs sort as they ran.
MAX_ITERATION = 999


@dataclass(frozen=True)
class Repeat:
    """Run the step again while a boolean field of its result is true, at most `max_runs` times per
    pipeline run; the next pipeline run goes on where this one stopped.

    `max_runs` is the default; a deployment may set its own (AWS: the stack's `ingestMaxInvocations`).
    """

    while_field: str
    max_runs: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.max_runs <= MAX_ITERATION:
            raise ValueError(f"max_runs must be between 1 and {MAX_ITERATION}, got {self.max_runs}")

    def again(self, result: Mapping[str, Any], iteration: int, max_runs: int | None = None) -> bool:
        """Whether the run after run `iteration`, which returned `result`, should happen."""
        return result[self.while_field] is True and iteration < (max_runs or self.max_runs)


@dataclass(frozen=True)
class Step:
    """One step of the pipeline."""

    name: str
    kind: StepKind
    # The step's module. A FUNCTION module has `handler(event, context)` for Lambda and
    # `run(event, settings, deadline)`, which the handler (deadline: the invocation's remaining time) and
    # the local runner (a local budget) call; a SPARK_JOB module has `main(argv)` for Glue, and
    # `parse_args(argv)` and `run(spark, arguments)`, which main and the local runner call.
    entry_point: str
    description: str
    # Per-run inputs: event fields for a FUNCTION, `--name` job arguments for a SPARK_JOB.
    inputs: Mapping[str, Input] = field(default_factory=lambda: MappingProxyType({}))
    # Deployment settings the step reads (job arguments fixed per stack, or environment variables); the
    # infrastructure sets them in AWS and the local runner from the data directory.
    settings: tuple[str, ...] = ()
    # Fields of the step's result that later steps and the run summary use.
    result_fields: tuple[str, ...] = ()
    # Run the step again while its result says so (ingestion in bounded pieces); None: run it once.
    repeat: Repeat | None = None
    # The layers whose data the step reads and writes: in AWS its role may touch those and nothing else,
    # and a SPARK_JOB is sized by the layer it writes (e.g. `silverWorkers`).
    reads: tuple[Layer, ...] = ()
    writes: tuple[Layer, ...] = ()
    # The counts the step publishes per run besides its duration and failures (etl/metrics.py); the
    # dashboard and the alarms are declared from them. metrics.TABLE_ROWS: one per table it writes.
    metrics: tuple[str, ...] = ()
    # Distributions a SPARK_JOB installs at start beyond what Glue has, by name: the versions are
    # requirements.txt's pins. The code runs without them (slower), so a missing one costs no result.
    python_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of steps; each step runs after the one before it succeeded.

    The first `per_dataset` steps form a branch that runs once per declared dataset (concurrently in AWS,
    one after the other locally), each with its dataset as BranchValue.DATASET; the steps after them run
    once every branch has succeeded. A branch's steps see only their own branch's results.
    """

    name: str
    steps: tuple[Step, ...]
    # At most one run at a time per deployment: a lock on the data directory locally, a lock item in a
    # DynamoDB table in AWS (Step Functions alone lets executions overlap).
    exclusive: bool = True
    per_dataset: int = 0

    @property
    def branch(self) -> tuple[Step, ...]:
        """The steps run once per dataset."""
        return self.steps[: self.per_dataset]

    @property
    def joined(self) -> tuple[Step, ...]:
        """The steps run once, after every dataset's branch."""
        return self.steps[self.per_dataset :]

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique, got {names}")
        if not 0 <= self.per_dataset <= len(self.steps):
            raise ValueError(f"per_dataset must be between 0 and {len(self.steps)}, got {self.per_dataset}")
        for position, step in enumerate(self.steps):
            in_branch = position < self.per_dataset
            # A step after the branch cannot name one dataset's result: there is one per dataset.
            start = 0 if in_branch else self.per_dataset
            earlier = {s.name: s for s in self.steps[start:position]}
            for argument, value in step.inputs.items():
                if value is BranchValue.DATASET and not in_branch:
                    raise ValueError(
                        f"step {step.name!r} input {argument!r} is the branch's dataset, but the step "
                        "runs after the per-dataset branch"
                    )
                if isinstance(value, StepResult) and (
                    value.step not in earlier or value.field not in earlier[value.step].result_fields
                ):
                    raise ValueError(
                        f"step {step.name!r} input {argument!r} refers to {value.step}.{value.field}, "
                        "which no earlier step returns"
                    )
                if value is StepValue.ITERATION and step.repeat is None:
                    raise ValueError(
                        f"step {step.name!r} input {argument!r} is an iteration, but it never repeats"
                    )
            if step.repeat is not None and step.repeat.while_field not in step.result_fields:
                raise ValueError(
                    f"step {step.name!r} repeats while {step.repeat.while_field!r}, which it does not return"
                )

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


# Argument names shared by the Spark jobs (Glue passes them as `--name value`).
BRONZE_ROOT = "--bronze-root"
DATASET = "--dataset"
SILVER_DATABASE = "--silver-database"
GOLD_DATABASE = "--gold-database"
RUN_ID = "--run-id"
MANIFEST = "--manifest"
# The branch a run writes Silver and Gold to, named after the run; `main` moves after the audits passed.
BRANCH = "--branch"
# Publish the branch even though audits failed (logged); "true" or "false".
PUBLISH_ANYWAY = "--publish-anyway"
# Where the Silver job checkpoints its validated batch: reliable storage, since FLEX may take executors away.
CHECKPOINT_ROOT = "--checkpoint-root"
# How the Gold job brings a table whose Silver input changed up to date (etl/gold/job.py): "full" rebuilds
# it, "incremental" recomputes the rows the change touched.
GOLD_REFRESH = "--refresh"
GOLD_REFRESH_MODES = ("full", "incremental")

# Fields of the ingestion summary (etl.bronze.ingest.IngestionSummary).
INGESTION_RESULT_FIELDS = (
    "run_id",
    "manifest",
    "pages",
    "records",
    "objects",
    "watermark",
    "has_more",
)

BRONZE = Step(
    name="Bronze",
    kind=StepKind.FUNCTION,
    entry_point="etl.bronze.handler",
    description="Bronze: pull new and changed records from the source API into raw JSON Lines",
    inputs=MappingProxyType(
        {
            "run_id": ExecutionValue.RUN_ID,
            "started_at": ExecutionValue.STARTED_AT,
            "iteration": StepValue.ITERATION,
            "dataset": BranchValue.DATASET,
        }
    ),
    result_fields=INGESTION_RESULT_FIELDS,
    # Each run stops before its deadline and says whether the source has more: a long history is
    # fetched in many bounded runs, all merged by one Silver run.
    repeat=Repeat(while_field="has_more"),
    writes=(Layer.BRONZE,),
    metrics=(metrics.RECORDS_INGESTED, metrics.PAGES),
)

SILVER = Step(
    name="Silver",
    kind=StepKind.SPARK_JOB,
    entry_point="etl.silver.job",
    description="Silver: validate, type and de-duplicate the new runs and MERGE them into silver.<dataset>",
    inputs=MappingProxyType(
        {
            DATASET: BranchValue.DATASET,
            RUN_ID: StepResult("Bronze", "run_id"),
            MANIFEST: StepResult("Bronze", "manifest"),
            BRANCH: ExecutionValue.RUN_ID,
        }
    ),
    settings=(BRONZE_ROOT, SILVER_DATABASE, CHECKPOINT_ROOT),
    reads=(Layer.BRONZE,),
    writes=(Layer.SILVER,),
    metrics=(
        metrics.RECORDS_READ,
        metrics.RECORDS_ACCEPTED,
        metrics.RECORDS_QUARANTINED,
        metrics.RECORDS_MERGED,
    ),
    # The quick path of validation (etl/silver/quick_path.py).
    python_modules=("msgspec",),
)

GOLD = Step(
    name="Gold",
    kind=StepKind.SPARK_JOB,
    entry_point="etl.gold.job",
    # Said before the step runs, so true whether it rebuilds, updates or keeps each model.
    description=(
        "Gold: rebuild or update the Gold models whose Silver tables or definition changed, keep the others"
    ),
    inputs=MappingProxyType({BRANCH: ExecutionValue.RUN_ID}),
    settings=(SILVER_DATABASE, GOLD_DATABASE, GOLD_REFRESH),
    reads=(Layer.SILVER,),
    writes=(Layer.GOLD,),
    metrics=(metrics.TABLE_ROWS,),
)

AUDIT = Step(
    name="Audit",
    kind=StepKind.SPARK_JOB,
    entry_point="etl.audit.job",
    description="Audit: check the run's branch of Silver and Gold, then publish it to main (or fail)",
    inputs=MappingProxyType({BRANCH: ExecutionValue.RUN_ID}),
    # The thresholds (etl/audit/checks.py): the stack config's in AWS, the same defaults locally.
    settings=(SILVER_DATABASE, GOLD_DATABASE, PUBLISH_ANYWAY, *AuditThresholds().arguments()),
    # Publishing commits to every table (a fast-forward), and maintenance follows it; what a step may
    # write it may read, so `reads` stays empty.
    # Sized by Gold (`goldWorkers`): it reads metadata and aggregates more than it moves data.
    writes=(Layer.GOLD, Layer.SILVER),
    metrics=(metrics.AUDITS_FAILED,),
)

# Bronze and Silver once per dataset, then Gold over all of them, then the audits and publishing.
PIPELINE = Pipeline(name="medallion", steps=(BRONZE, SILVER, GOLD, AUDIT), per_dataset=2)
