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
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl import metrics, pipeline, registry
from etl.audit.checks import (
    Audit,
    AuditResult,
    AuditThresholds,
    Freshness,
    NoNullKeys,
    QuarantineRate,
    RecordsIngested,
    RowCountDrop,
    SumMatchesSilver,
)
from etl.catalog import table_identifier
from etl.dataset import Dataset, GoldModel
from etl.spark.branches import (
    MAIN,
    branch_snapshots,
    publish,
    require_branch_name,
)
from etl.spark.jobs import add_maintenance_arguments, glue_session, maintenance_policy, parse_job_arguments
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.tables import SILVER_INGESTION_RUNS
from etl.timestamps import utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditArguments:
    silver_database: str
    gold_database: str
    branch: str
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)
    publish_anyway: bool = False
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)


@dataclass(frozen=True)
class AuditSummary:
    branch: str
    results: tuple[AuditResult, ...]
    published: tuple[str, ...] = ()  # database.table of every table whose `main` moved to the branch
    maintenance: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[AuditResult, ...]:
        """Failed audits: only in a summary published anyway (else the job raised AuditFailed)."""
        return tuple(result for result in self.results if not result.passed)


class AuditFailed(RuntimeError):
    """An audit of the run's branch failed: `main` is unchanged, the branch is kept."""

    def __init__(
        self, branch: str, results: Sequence[AuditResult], data_dir: str = "", source: str = ""
    ) -> None:
        """`data_dir` and `source`: the options (" --data-dir DIR", " --source-url URL") the suggested
        commands need to act on the same data and source; none in AWS."""
        self.branch = branch
        self.results = tuple(results)
        failed = [result for result in results if not result.passed]
        super().__init__(
            f"audit failed on branch {branch}: {'; '.join(result.line() for result in failed)}. main is "
            f"unchanged and the branch is kept: inspect it with `lakehouse audits --branch {branch}"
            f"{data_dir}`, fix the cause and run again, or publish anyway with `lakehouse run "
            f"--publish-anyway{data_dir}{source}`"
        )


def parse_args(argv: Sequence[str]) -> AuditArguments:
    parser = argparse.ArgumentParser(prog="audit", description=__doc__, allow_abbrev=False)
    parser.add_argument(pipeline.SILVER_DATABASE, required=True)
    parser.add_argument(pipeline.GOLD_DATABASE, required=True)
    parser.add_argument(pipeline.BRANCH, required=True, help="the run's branch")
    parser.add_argument(pipeline.PUBLISH_ANYWAY, choices=("true", "false"), default="false")
    AuditThresholds.add_arguments(parser)
    add_maintenance_arguments(parser)
    args = parse_job_arguments(parser, argv)
    return AuditArguments(
        args.silver_database,
        args.gold_database,
        require_branch_name(args.branch),
        AuditThresholds.from_arguments(args),
        args.publish_anyway == "true",
        maintenance_policy(args),
    )


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    with metrics.published_run(metrics.namespace_argument(argv), pipeline.AUDIT.name) as published:
        try:
            summary = run(glue_session("lakehouse-audit"), args)
        except AuditFailed as failure:
            published.counts.update(run_metrics(failure.results))
            raise
        published.counts.update(run_metrics(summary.results))


def run_metrics(results: Sequence[AuditResult]) -> dict[str, float]:
    """The audits' measured values, and how many failed."""
    return {
        metrics.AUDITS_FAILED: sum(1 for result in results if not result.passed),
        **{metrics.audit_result(result.audit, result.table): result.value for result in results},
    }


def run(spark: SparkSession, args: AuditArguments) -> AuditSummary:
    results = measure(spark, args.silver_database, args.gold_database, args.branch, args.thresholds)
    failed = [result for result in results if not result.passed]
    if failed and not args.publish_anyway:
        raise AuditFailed(args.branch, results)
    for result in failed:
        logger.warning("published branch %s anyway (--publish-anyway): %s", args.branch, result.line())
    published = publish_branch(spark, args.silver_database, args.gold_database, args.branch)
    datasets = {f"{args.silver_database}.{dataset.name}" for dataset in registry.datasets()}
    maintenance = []
    for identifier in published:
        database, table = identifier.split(".")
        # Only the datasets' tables take merge-on-read deletes; the others are appended to or overwritten.
        maintenance += maintain(spark, database, table, args.maintenance, compact=identifier in datasets)
    return AuditSummary(args.branch, tuple(results), tuple(published), tuple(maintenance))


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
    """
    now = now or utc_now()
    runs = load_new_runs(spark, silver_database, branch)
    results = [
        measure_dataset_audit(spark, audit, dataset, silver_database, branch, runs, thresholds, now)
        for dataset in registry.datasets()
        for audit in dataset.audits
    ]
    results += [
        measure_gold_audit(spark, audit, model, silver_database, gold_database, branch, thresholds)
        for model in registry.gold_models()
        for audit in model.audits
    ]
    return results


def publish_branch(spark: SparkSession, silver_database: str, gold_database: str, branch: str) -> list[str]:
    """Fast-forward `main` of every table the run wrote; the ledger last, so that a publishing cut short
    leaves runs the next run merges again (idempotently) rather than runs listed but not published."""
    tables = [
        *((silver_database, t.name) for d in registry.datasets() for t in d.tables),
        *((gold_database, t.name) for t in registry.gold_tables()),
        (silver_database, SILVER_INGESTION_RUNS.name),
    ]
    return [f"{database}.{name}" for database, name in tables if publish(spark, database, name, branch)]


# -- the measures -----------------------------------------------------------------------------------------


def load_new_runs(spark: SparkSession, database: str, branch: str) -> DataFrame:
    """The ledger rows on the branch that `main` does not have: the ingestion runs this run merged."""
    ledger = table_identifier(database, SILVER_INGESTION_RUNS.name)
    on_branch_rows = load_table(spark, ledger, branch)
    published = load_table(spark, ledger, MAIN)
    return on_branch_rows.join(published.select("run_id"), "run_id", "left_anti")


def load_table(spark: SparkSession, identifier: str, branch: str) -> DataFrame:
    """The table as `branch` has it, else as `main` has it; no rows before its first snapshot."""
    heads = branch_snapshots(spark, identifier)
    snapshot = heads.get(branch, heads.get(MAIN))
    if snapshot is None:
        return spark.table(identifier)  # no snapshot: no rows
    return spark.sql(f"SELECT * FROM {identifier} VERSION AS OF {snapshot}")


def measure_dataset_audit(
    spark: SparkSession,
    audit: Audit,
    dataset: Dataset,
    database: str,
    branch: str,
    runs: DataFrame,
    thresholds: AuditThresholds,
    now: datetime,
) -> AuditResult:
    table = f"{database}.{dataset.name}"
    mine = runs.where(F.col("dataset") == dataset.name)
    if isinstance(audit, RecordsIngested | QuarantineRate):
        totals = mine.agg(
            F.coalesce(F.sum("records"), F.lit(0)).alias("records"),
            F.coalesce(F.sum("quarantined"), F.lit(0)).alias("quarantined"),
        ).first()
        records, quarantined = (int(totals["records"]), int(totals["quarantined"])) if totals else (0, 0)
        if isinstance(audit, QuarantineRate):
            rate = 100.0 * quarantined / records if records else 0.0
            bound = thresholds.max_quarantine_percent
            detail = f"{quarantined} of {records} records this run"
            return AuditResult(audit.name, table, round(rate, 2), f"<= {bound}%", rate <= bound, "%", detail)
        return _records_ingested(spark, audit, dataset, database, table, records, thresholds)
    if isinstance(audit, Freshness):
        bound_hours = thresholds.max_staleness_hours
        if bound_hours == 0:
            return AuditResult(audit.name, table, 0, "off (0 h)", True, detail="not checked")
        column = audit.column or dataset.version
        newest = (
            load_table(spark, table_identifier(database, dataset.name), branch).agg(F.max(column)).first()
        )
        if newest is None or newest[0] is None:
            return AuditResult(
                audit.name, table, 0, f"<= {bound_hours} h", False, detail=f"the table has no {column}"
            )
        age = (now.replace(tzinfo=None) - newest[0]).total_seconds() / 3600
        detail = f"newest {column} {newest[0]:%Y-%m-%d %H:%M} UTC"
        return AuditResult(
            audit.name, table, round(age, 2), f"<= {bound_hours} h", age <= bound_hours, " h old", detail
        )
    raise TypeError(f"dataset {dataset.name}: {type(audit).__name__} is not an audit of a dataset")


def _records_ingested(
    spark: SparkSession,
    audit: Audit,
    dataset: Dataset,
    database: str,
    table: str,
    records: int,
    thresholds: AuditThresholds,
) -> AuditResult:
    bound, runs = thresholds.min_records, thresholds.empty_after_runs
    threshold = f">= {bound}" + (f", not empty after {runs} non-empty runs" if runs else "")
    if records < bound:
        return AuditResult(audit.name, table, records, threshold, False, " records")
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
    return AuditResult(audit.name, table, records, threshold, True, " records")


def measure_gold_audit(
    spark: SparkSession,
    audit: Audit,
    model: GoldModel,
    silver_database: str,
    gold_database: str,
    branch: str,
    thresholds: AuditThresholds,
) -> AuditResult:
    name = model.table.name
    table, identifier = f"{gold_database}.{name}", table_identifier(gold_database, name)
    heads = branch_snapshots(spark, identifier)
    if heads.get(branch, heads.get(MAIN)) == heads.get(MAIN):
        # The run kept the table as published (the Gold job rebuilds it whenever a Silver table it reads
        # changed): it was audited when it was published, and measuring it again costs a scan.
        return AuditResult(audit.name, table, 0, "-", True, detail="not measured: unchanged since published")
    if isinstance(audit, NoNullKeys):
        nulls = (
            load_table(spark, identifier, branch)
            .where(" OR ".join(f"{column} IS NULL" for column in audit.columns))
            .count()
        )
        detail = f"null {' or '.join(audit.columns)}"
        return AuditResult(audit.name, table, nulls, "= 0", nulls == 0, " rows", detail)
    if isinstance(audit, SumMatchesSilver):
        gold = load_table(spark, identifier, branch).agg(F.coalesce(F.sum(audit.column), F.lit(0))).first()
        silver_table = table_identifier(silver_database, audit.dataset)
        silver = load_table(spark, silver_table, branch).selectExpr(audit.silver_sum).first()
        gold_sum, silver_sum = (gold[0] if gold else 0), (silver[0] if silver else 0)
        difference = abs(gold_sum - silver_sum)
        detail = f"sum of {audit.column} {gold_sum}, {silver_database}.{audit.dataset} {silver_sum}"
        return AuditResult(audit.name, table, float(difference), "= 0", difference == 0, " apart", detail)
    if isinstance(audit, RowCountDrop):
        bound = thresholds.max_row_drop_percent
        # Counted, not read from the snapshot summaries: a branch that a write created (rather than
        # `create_branch`) has a wrong `total-records` in its first snapshot.
        before = load_table(spark, identifier, MAIN).count() if MAIN in heads else 0
        after = load_table(spark, identifier, branch).count()
        if not before:
            return AuditResult(audit.name, table, 0, f"<= {bound}%", True, "%", "no published rows yet")
        drop = max(0.0, 100.0 * (before - after) / before)
        detail = f"{before} -> {after} rows"
        return AuditResult(audit.name, table, round(drop, 2), f"<= {bound}%", drop <= bound, "%", detail)
    raise TypeError(f"gold.{name}: {type(audit).__name__} is not an audit of a Gold table")


if __name__ == "__main__":
    main(sys.argv[1:])
