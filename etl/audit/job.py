"""Audit job: check the run's branch of Silver and Gold against the declared audits, then publish it.

    main -> measure (every dataset's and Gold model's audits, on the branch)
         -> all passed (or --publish-anyway): publish (fast-forward `main` of each table to the branch,
            drop the branch) -> maintenance
         -> else: fail in one line naming each failed audit, its value and its threshold

A failed run leaves `main` as it was and keeps the branch for inspection (`lakehouse audits`, or
`SELECT ... FROM silver.orders VERSION AS OF '<run id>'`). Nothing of the branch is lost: the next run starts
a new branch from `main` and merges again the Bronze runs `main`'s ledger does not list, so a retry after
the cause is fixed (the source repaired, `lakehouse bronze repair`, a threshold changed) publishes them.
Maintenance runs here, after publishing: a commit to `main` while a branch is open would stop `main` from
being the branch's ancestor, and the fast-forward would fail.

    main --drop-branch RUN [--even-if-waiting true] -> drop the run's kept branch from every table, only

In AWS, where no `lakehouse audits` runs, an operator starts the job by hand with `--branch RUN
--publish-anyway true` or `--drop-branch RUN` (README: When an audit fails in AWS).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from etl import metrics, pipeline, registry
from etl.audit import kept_branches
from etl.audit.checks import (
    SWITCHED_OFF,
    Audit,
    AuditResult,
    AuditThresholds,
    Freshness,
    NoNullKeys,
    QuarantineRate,
    RecordsIngested,
    RowCountDrop,
    SumMatchesSilver,
    shown_percent,
    threshold_text,
)
from etl.catalog import table_identifier
from etl.dataset import Dataset, GoldModel
from etl.gold.job import BUILT_FROM, silver_snapshots_built_from
from etl.spark.branches import (
    MAIN,
    branch_snapshots,
    heads,
    iceberg_table,
    publish_loaded,
    require_branch_name,
    snapshot_summary,
)
from etl.spark.jobs import add_maintenance_arguments, glue_session, maintenance_policy, parse_job_arguments
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.spark.side_by_side import side_by_side
from etl.tables import SILVER_INGESTION_RUNS
from etl.timestamps import utc_now

logger = logging.getLogger(__name__)


# Arguments of an Audit job started by hand, not by the pipeline: drop a kept branch instead of auditing one;
# "true" also drops one still waiting to be published.
DROP_BRANCH = "--drop-branch"
EVEN_IF_WAITING = "--even-if-waiting"


@dataclass(frozen=True)
class AuditArguments:
    silver_database: str
    gold_database: str
    branch: str  # the run's branch: to audit and publish, or to drop (drop_branch)
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)
    publish_anyway: bool = False
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    drop_branch: bool = False
    even_if_waiting: bool = False


@dataclass(frozen=True)
class AuditSummary:
    branch: str
    results: tuple[AuditResult, ...]
    published: tuple[str, ...] = ()  # database.table of every table whose `main` moved to the branch
    maintenance: tuple[str, ...] = ()
    # Branches earlier runs left on the declared tables (failed, or held back by an audit), as publishing
    # found them: `lakehouse run` says what to do with them.
    other_branches: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[AuditResult, ...]:
        """Failed audits: only in a summary published anyway (else the job raised AuditFailed)."""
        return tuple(result for result in self.results if not result.passed)


# Why an audit of a table the run kept as published is not measured again (AuditResult.not_measured).
UNCHANGED_SINCE_PUBLISHED = "unchanged since published"


class AuditFailed(RuntimeError):
    """An audit of the run's branch failed: `main` is unchanged, the branch is kept."""

    def __init__(
        self,
        branch: str,
        results: Sequence[AuditResult],
        data_dir: str = "",
        source: str = "",
        thresholds: str = "",
        *,
        in_aws: bool = False,
    ) -> None:
        """`data_dir`, `source` and `thresholds`: the options (" --data-dir DIR", " --source-url URL",
        " --audit-... N" where not the default) the suggested `lakehouse` commands need to act on the same
        data and source, and to measure as the run did. `in_aws`: suggest the Audit job started by hand
        instead (`aws_advice`)."""
        self.branch = branch
        self.results = tuple(results)
        failed = [result for result in results if not result.passed]
        advice = (
            aws_advice(branch)
            if in_aws
            else f"inspect it with `lakehouse audits --branch {branch}{data_dir}{thresholds}`, fix the cause "
            f"and run again, or publish anyway with `lakehouse run --publish-anyway{data_dir}{source}"
            f"{thresholds}` (a new run: it also ingests what the source has new since this one, and "
            "publishes it with the rest)"
        )
        super().__init__(
            f"audit failed on branch {branch}: {'; '.join(result.line() for result in failed)}. main is "
            f"unchanged and the branch is kept: {advice}"
        )


def aws_advice(branch: str) -> str:
    """What a failed audit suggests in AWS, where no `lakehouse` command runs: the Audit job started by
    hand, with the arguments that publish the branch anyway or drop it."""
    publish = json.dumps({pipeline.BRANCH: branch, pipeline.PUBLISH_ANYWAY: "true"})
    drop = json.dumps({DROP_BRANCH: branch, EVEN_IF_WAITING: "true"})
    return (
        "fix the cause and start a new execution, or start the stack's Audit job by hand with the arguments "
        f"{publish} to publish the branch as it is, or {drop} to drop it (README: When an audit fails in "
        "AWS)"
    )


def parse_args(argv: Sequence[str]) -> AuditArguments:
    parser = argparse.ArgumentParser(prog="audit", description=__doc__, allow_abbrev=False)
    parser.add_argument(pipeline.SILVER_DATABASE, required=True)
    parser.add_argument(pipeline.GOLD_DATABASE, required=True)
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument(pipeline.BRANCH, help="the run's branch: audit it, then publish it")
    chosen.add_argument(
        DROP_BRANCH, metavar="RUN", help="drop the run's kept branch from every table, and do nothing else"
    )
    parser.add_argument(pipeline.PUBLISH_ANYWAY, choices=("true", "false"), default="false")
    parser.add_argument(EVEN_IF_WAITING, choices=("true", "false"), default="false")
    AuditThresholds.add_arguments(parser)
    add_maintenance_arguments(parser)
    args = parse_job_arguments(parser, argv)
    dropping, even_if_waiting = args.drop_branch is not None, args.even_if_waiting == "true"
    if even_if_waiting and not dropping:
        parser.error(f"{EVEN_IF_WAITING} true goes with {DROP_BRANCH} RUN")
    if dropping and args.publish_anyway == "true":
        parser.error(
            f"{DROP_BRANCH} drops a branch and {pipeline.PUBLISH_ANYWAY} true publishes one: give one "
            f"of them ({pipeline.BRANCH} RUN with {pipeline.PUBLISH_ANYWAY} true)"
        )
    return AuditArguments(
        args.silver_database,
        args.gold_database,
        require_branch_name(args.drop_branch if dropping else args.branch),
        AuditThresholds.from_arguments(args),
        args.publish_anyway == "true",
        maintenance_policy(args),
        drop_branch=dropping,
        even_if_waiting=even_if_waiting,
    )


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    if args.drop_branch:
        # Not a pipeline run: no Audit metrics (the step's alarms watch the pipeline's runs).
        print(drop_branch(glue_session("lakehouse-audit"), args), flush=True)
        return
    with metrics.published_run(metrics.namespace_argument(argv), pipeline.AUDIT.name) as published:
        try:
            summary = run(glue_session("lakehouse-audit"), args)
        except AuditFailed as failure:
            published.counts.update(run_metrics(failure.results))
            raise AuditFailed(failure.branch, failure.results, in_aws=True) from None
        published.counts.update(run_metrics(summary.results))


def drop_branch(spark: SparkSession, args: AuditArguments) -> str:
    """Drop the run's kept branch from every Silver and Gold table, as `lakehouse audits --drop-branch`
    does; the line saying where from."""
    dropped = kept_branches.drop_branch(
        spark,
        args.silver_database,
        args.gold_database,
        args.branch,
        args.even_if_waiting,
        inspect="the error of its failed Audit job run (in the alert, and the job's error log)",
        force=f'"{EVEN_IF_WAITING}": "true" to the job run\'s arguments',
    )
    return kept_branches.dropped_line(args.branch, dropped)


def run_metrics(results: Sequence[AuditResult]) -> dict[str, float]:
    """The audits' measured values (none for an audit not measured: a 0 would read as measured), and how
    many failed."""
    return {
        metrics.AUDITS_FAILED: sum(1 for result in results if not result.passed),
        **{
            metrics.audit_result(result.audit, result.table): result.value
            for result in results
            if not result.not_measured
        },
    }


def run(spark: SparkSession, args: AuditArguments) -> AuditSummary:
    if args.drop_branch:  # publishing the branch asked to be dropped would be the opposite of the ask
        raise ValueError(f"{DROP_BRANCH} {args.branch}: drop it with drop_branch, not run")
    results = measure(spark, args.silver_database, args.gold_database, args.branch, args.thresholds)
    failed = [result for result in results if not result.passed]
    if failed and not args.publish_anyway:
        raise AuditFailed(args.branch, results)
    for result in failed:
        logger.warning("published branch %s anyway (--publish-anyway): %s", args.branch, result.line())
    published, others = publish_branch(spark, args.silver_database, args.gold_database, args.branch)
    datasets = {f"{args.silver_database}.{dataset.name}" for dataset in registry.datasets()}
    maintenance = []
    for identifier in published:
        database, table = identifier.split(".")
        # Only the datasets' tables take merge-on-read deletes; the others are appended to or overwritten.
        maintenance += maintain(spark, database, table, args.maintenance, compact=identifier in datasets)
    return AuditSummary(args.branch, tuple(results), tuple(published), tuple(maintenance), tuple(others))


def measure(
    spark: SparkSession,
    silver_database: str,
    gold_database: str,
    branch: str,
    thresholds: AuditThresholds,
    now: datetime | None = None,
) -> list[AuditResult]:
    """Every declared audit, measured on `branch` (a table the run did not write is read on `main`).

    The tables are read at their snapshots (`VERSION AS OF`), not through `spark.wap.branch`: Iceberg
    refuses time travel in a session that names a branch, and the audits compare the branch with `main`.
    Each audit asks for the aggregates it needs (`Measurements`), all of them are computed together (one
    aggregation per table version, side by side), and then each audit judges its values.
    """
    now = now or utc_now()
    versions = TableVersions(spark, branch)
    measurements = Measurements()
    runs = load_new_runs(versions, silver_database)
    judged = [
        plan_dataset_audit(measurements, versions, audit, dataset, silver_database, runs, thresholds, now)
        for dataset in registry.datasets()
        for audit in dataset.audits
    ]
    judged += [
        plan_gold_audit(measurements, versions, audit, model, silver_database, gold_database, thresholds)
        for model in registry.gold_models()
        for audit in model.audits
    ]
    measurements.compute()
    return [judge() for judge in judged]


def publish_branch(
    spark: SparkSession, silver_database: str, gold_database: str, branch: str
) -> tuple[list[str], list[str]]:
    """Fast-forward `main` of every table the run wrote; the ledger last, so that a publishing cut short
    leaves runs the next run merges again (idempotently) rather than runs listed but not published.
    Returns the tables published and the other branches the tables have (left by earlier runs), sorted."""
    tables = [
        *((silver_database, t.name) for d in registry.datasets() for t in d.tables),
        *((gold_database, t.name) for t in registry.gold_tables()),
        (silver_database, SILVER_INGESTION_RUNS.name),
    ]
    published, others = [], set()
    for database, name in tables:
        loaded = iceberg_table(spark, table_identifier(database, name))
        others |= heads(loaded).keys() - {MAIN, branch}
        if publish_loaded(loaded, branch):
            published.append(f"{database}.{name}")
    return published, sorted(others)


# -- the measures -----------------------------------------------------------------------------------------


class Measurements:
    """The aggregates the audits ask for, computed together: one aggregation per table version read (the
    audits of a table share its scan, and an aggregate asked twice is computed once), each one Spark
    action, run side by side (etl/spark/side_by_side.py). Cross-joined into one row and one action, they
    ran one after the other (docs/benchmarks.md, "Side by side: Gold's models and the Audit step's
    measures")."""

    def __init__(self) -> None:
        # source -> (its rows, aggregate expression -> (column name, aggregate))
        self._sources: dict[str, tuple[DataFrame, dict[str, tuple[str, Column]]]] = {}
        self._values: dict[str, Any] | None = None

    def ask(self, source: str, rows: DataFrame, aggregate: Column) -> Callable[[], Any]:
        """Ask for `aggregate` over `rows` (`source` names them: the same name, the same rows); returns
        the function that gives its value once computed."""
        _, aggregates = self._sources.setdefault(source, (rows, {}))
        key = str(aggregate)
        if key not in aggregates:
            asked = sum(len(each) for _, each in self._sources.values())
            aggregates[key] = (f"measure_{asked}", aggregate)  # a column name unique in the row
        name = aggregates[key][0]
        return lambda: self.value(name)

    def compute(self) -> None:
        aggregations = [
            partial(_one_row, frame.agg(*(aggregate.alias(name) for name, aggregate in aggregates.values())))
            for frame, aggregates in self._sources.values()
        ]
        rows = side_by_side(aggregations, MEASURED_AT_ONCE, "audit")
        self._values = {name: value for row in rows for name, value in row.items()}

    def value(self, name: str) -> Any:
        if self._values is None:
            raise RuntimeError("the measurements are not computed yet")
        return self._values[name]


# Aggregations run at once: small jobs, mostly waiting on the driver and the Parquet footers.
MEASURED_AT_ONCE = 4


def _one_row(aggregation: DataFrame) -> dict[str, Any]:
    row = aggregation.first()
    return row.asDict() if row is not None else {}


class TableVersions:
    """The tables as the audits read them: each table's branch heads looked up once per Audit run (the
    tables do not move while it measures)."""

    def __init__(self, spark: SparkSession, branch: str) -> None:
        self.spark, self.branch = spark, branch
        self._heads: dict[str, dict[str, int]] = {}
        self._summaries: dict[tuple[str, int], dict[str, str]] = {}
        self._read: dict[str, DataFrame] = {}

    def heads(self, identifier: str) -> dict[str, int]:
        if identifier not in self._heads:
            self._heads[identifier] = branch_snapshots(self.spark, identifier)
        return self._heads[identifier]

    def snapshot(self, identifier: str, branch: str) -> int | None:
        """The snapshot the audits read: `branch`'s head where the table has it, else `main`'s."""
        heads = self.heads(identifier)
        return heads.get(branch, heads.get(MAIN))

    def records(self, identifier: str, branch: str) -> int:
        """How many rows the table holds as `branch` has it, else as `main` has it, from the snapshot's
        summary on the driver (0 before its first snapshot)."""
        snapshot = self.snapshot(identifier, branch)
        if snapshot is None:
            return 0
        return int(self.summary(identifier, snapshot).get("total-records", 0))

    def summary(self, identifier: str, snapshot: int) -> dict[str, str]:
        """A snapshot's summary properties, from the table's metadata on the driver (loaded once)."""
        if (identifier, snapshot) not in self._summaries:
            loaded = iceberg_table(self.spark, identifier).snapshot(snapshot)
            self._summaries[(identifier, snapshot)] = snapshot_summary(loaded)
        return self._summaries[(identifier, snapshot)]

    def read(self, identifier: str, branch: str) -> tuple[str, DataFrame]:
        """(a name for the table version, its rows) as `branch` has them, else as `main` has them; no
        rows before the table's first snapshot."""
        snapshot = self.snapshot(identifier, branch)
        source = f"{identifier}@{snapshot if snapshot is not None else 'none'}"
        if source not in self._read:
            self._read[source] = (
                self.spark.table(identifier)  # no snapshot: no rows
                if snapshot is None
                else self.spark.sql(f"SELECT * FROM {identifier} VERSION AS OF {snapshot}")
            )
        return source, self._read[source]


def load_new_runs(versions: TableVersions, database: str) -> DataFrame:
    """The ledger rows on the branch that `main` does not have: the ingestion runs this run merged."""
    ledger = table_identifier(database, SILVER_INGESTION_RUNS.name)
    _, on_branch_rows = versions.read(ledger, versions.branch)
    _, published = versions.read(ledger, MAIN)
    return on_branch_rows.join(published.select("run_id"), "run_id", "left_anti")


def load_table(spark: SparkSession, identifier: str, branch: str) -> DataFrame:
    """The table as `branch` has it, else as `main` has it; no rows before its first snapshot."""
    return TableVersions(spark, branch).read(identifier, branch)[1]


Judge = Callable[[], AuditResult]


def plan_dataset_audit(
    measurements: Measurements,
    versions: TableVersions,
    audit: Audit,
    dataset: Dataset,
    database: str,
    runs: DataFrame,
    thresholds: AuditThresholds,
    now: datetime,
) -> Judge:
    """Ask for what the dataset's audit needs; the function returned judges it once measured."""
    table = f"{database}.{dataset.name}"
    if isinstance(audit, RecordsIngested | QuarantineRate):
        # Sums over the dataset's rows of the new runs (0 without any), shared by both audits.
        mine = F.col("dataset") == dataset.name
        records = measurements.ask(
            "new runs", runs, F.coalesce(F.sum(F.when(mine, F.col("records"))), F.lit(0))
        )
        if isinstance(audit, QuarantineRate):
            # The rows the quarantine gained on the branch, not the run's rejections: a rejected record
            # delivered again (the source re-sends the record at the watermark on every run) is in the
            # quarantine already, and judged when it first came; counting it again would fail every
            # later run of a source with nothing new.
            quarantine = table_identifier(database, dataset.quarantine_table.name)

            def quarantine_rate() -> AuditResult:
                total = int(records())
                bad = versions.records(quarantine, versions.branch) - versions.records(quarantine, MAIN)
                rate = 100.0 * bad / total if total else 0.0
                bound = thresholds.max_quarantine_percent
                detail = f"{bad:,} of {total:,} records this run newly quarantined"
                shown = f"<= {threshold_text(bound)}%"  # 0.5 stays 0.5, 5 stays 5 (not 5.0)
                measured = shown_percent(rate, bound)
                return AuditResult(audit.name, table, measured, shown, rate <= bound, "%", detail)

            return quarantine_rate
        # More than one when earlier runs' records were held back (a failed audit): they are judged again.
        run_count = measurements.ask("new runs", runs, F.count(F.when(mine, F.lit(1))))
        return lambda: _records_ingested(
            versions.spark, audit, dataset, database, table, int(records()), int(run_count()), thresholds
        )
    if isinstance(audit, Freshness):
        bound_hours = thresholds.max_staleness_hours
        if bound_hours == 0:
            return lambda: AuditResult(audit.name, table, 0, "off (0 h)", True, not_measured=SWITCHED_OFF)
        column = audit.column or dataset.version
        source, rows = versions.read(table_identifier(database, dataset.name), versions.branch)
        newest = measurements.ask(source, rows, F.max(column))

        def freshness() -> AuditResult:
            value = newest()
            if value is None:
                return AuditResult(
                    audit.name, table, 0, f"<= {bound_hours} h", False, detail=f"the table has no {column}"
                )
            age = (now.replace(tzinfo=None) - value).total_seconds() / 3600
            detail = f"newest {column} {value:%Y-%m-%d %H:%M} UTC"
            return AuditResult(
                audit.name, table, round(age, 2), f"<= {bound_hours} h", age <= bound_hours, " h old", detail
            )

        return freshness
    raise TypeError(f"dataset {dataset.name}: {type(audit).__name__} is not an audit of a dataset")


def _records_ingested(
    spark: SparkSession,
    audit: Audit,
    dataset: Dataset,
    database: str,
    table: str,
    records: int,
    ingestion_runs: int,
    thresholds: AuditThresholds,
) -> AuditResult:
    bound, runs = thresholds.min_records, thresholds.empty_after_runs
    threshold = f">= {bound}" + (f", not empty after {runs} non-empty runs" if runs else "")
    # The run summary's "records ingested" counts this run's ingestion alone.
    held_back = f"in {ingestion_runs} ingestion runs not on main yet" if ingestion_runs > 1 else ""
    if records < bound:
        return AuditResult(audit.name, table, records, threshold, False, " records", held_back)
    if records == 0 and runs:
        ledger = load_table(spark, table_identifier(database, SILVER_INGESTION_RUNS.name), MAIN)
        before = (
            ledger.where(F.col("dataset") == dataset.name)
            .orderBy(F.col("ingested_at").desc(), F.col("run_id").desc())
            .select("records")
            .limit(runs)
            .collect()
        )
        if len(before) == runs and all(row["records"] > 0 for row in before):
            detail = f"after {runs} runs that delivered records"
            return AuditResult(audit.name, table, 0, threshold, False, " records", detail)
    return AuditResult(audit.name, table, records, threshold, True, " records", held_back)


def branch_start_of_new_table(versions: TableVersions, identifier: str, snapshot: int) -> bool:
    """Whether `snapshot` is the empty one a branch starts from on a table `main` has no snapshot of
    (etl/spark/branches.py, create_branch): a new Gold table whose first build did not happen."""
    summary = versions.summary(identifier, snapshot)
    return (
        MAIN not in versions.heads(identifier)
        and BUILT_FROM not in summary
        and summary.get("total-records") == "0"
    )


def silver_changed_since_build(
    versions: TableVersions, identifier: str, model: GoldModel, silver_database: str
) -> list[str]:
    """The Silver tables the model reads whose snapshot on the branch is not the one the Gold table's rows
    were built from (all of them for a table never built, or built before builds were recorded)."""
    snapshot = versions.snapshot(identifier, versions.branch)
    record = versions.summary(identifier, snapshot).get(BUILT_FROM) if snapshot is not None else None
    built = silver_snapshots_built_from(record) if record else {}
    changed = []
    for dataset in model.reads:
        now = versions.snapshot(table_identifier(silver_database, dataset), versions.branch)
        if built.get(dataset) != ("none" if now is None else str(now)):
            changed.append(f"{silver_database}.{dataset}")
    return changed


def plan_gold_audit(
    measurements: Measurements,
    versions: TableVersions,
    audit: Audit,
    model: GoldModel,
    silver_database: str,
    gold_database: str,
    thresholds: AuditThresholds,
) -> Judge:
    """Ask for what the Gold model's audit needs; the function returned judges it once measured."""
    name, branch = model.table.name, versions.branch
    table, identifier = f"{gold_database}.{name}", table_identifier(gold_database, name)
    snapshot = versions.snapshot(identifier, branch)
    kept = snapshot == versions.heads(identifier).get(MAIN)
    if kept or snapshot is None or branch_start_of_new_table(versions, identifier, snapshot):
        behind = silver_changed_since_build(versions, identifier, model, silver_database)
        if behind:
            # The Gold step did not bring the table up to date with the branch's Silver (it failed, or the
            # branch is audited before it ran): publishing would leave stale or no rows on `main`.
            detail = f"{', '.join(behind)} changed since the table was built: did the run's Gold step finish?"
            return lambda: AuditResult(audit.name, table, len(behind), "= 0", False, " Silver tables", detail)
    if kept:
        # The run kept the table as published (the Gold job rebuilds it whenever a Silver table it reads
        # changed): it was audited when it was published, and measuring it again costs a scan.
        return lambda: AuditResult(audit.name, table, 0, "-", True, not_measured=UNCHANGED_SINCE_PUBLISHED)
    source, rows = versions.read(identifier, branch)
    if isinstance(audit, NoNullKeys):
        any_null = " OR ".join(f"{column} IS NULL" for column in audit.columns)
        nulls = measurements.ask(source, rows, F.expr(f"count_if({any_null})"))
        detail = f"null {' or '.join(audit.columns)}"
        return lambda: AuditResult(audit.name, table, nulls(), "= 0", nulls() == 0, " rows", detail)
    if isinstance(audit, SumMatchesSilver):
        gold = measurements.ask(source, rows, F.coalesce(F.sum(audit.column), F.lit(0)))
        silver_source, silver_rows = versions.read(table_identifier(silver_database, audit.dataset), branch)
        silver = measurements.ask(silver_source, silver_rows, F.expr(audit.silver_sum))

        def sum_matches() -> AuditResult:
            gold_sum, silver_sum = gold(), silver()
            difference = abs(gold_sum - silver_sum)
            detail = f"sum of {audit.column} {gold_sum:,}, {silver_database}.{audit.dataset} {silver_sum:,}"
            return AuditResult(audit.name, table, float(difference), "= 0", difference == 0, " apart", detail)

        return sum_matches
    if isinstance(audit, RowCountDrop):
        bound = thresholds.max_row_drop_percent
        # Counted, not read from the snapshot summaries: a branch that a write created (rather than
        # `create_branch`) has a wrong `total-records` in its first snapshot.
        after = measurements.ask(source, rows, F.count(F.lit(1)))
        published = MAIN in versions.heads(identifier)
        before = (
            measurements.ask(*versions.read(identifier, MAIN), F.count(F.lit(1))) if published else lambda: 0
        )

        def row_count_drop() -> AuditResult:
            rows_before, rows_after = before(), after()
            if not rows_before:
                return AuditResult(audit.name, table, 0, f"<= {bound}%", True, "%", "no published rows yet")
            drop = max(0.0, 100.0 * (rows_before - rows_after) / rows_before)
            detail = f"{rows_before:,} -> {rows_after:,} rows"
            shown = shown_percent(drop, bound)
            return AuditResult(audit.name, table, shown, f"<= {bound}%", drop <= bound, "%", detail)

        return row_count_drop
    raise TypeError(f"gold.{name}: {type(audit).__name__} is not an audit of a Gold table")


if __name__ == "__main__":
    main(sys.argv[1:])
