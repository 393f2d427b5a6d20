"""Gold job: rebuild each declared Gold model (datasets/gold) from its SQL, each in one atomic Iceberg commit.

A full rebuild, by measurement (docs/benchmarks.md): at 1M orders it takes about 2 s, and a 1% change
touched every (date, currency) group and would still need a full scan of Silver to recompute its customers.

    main -> load_silver_views -> for each model: transform (its SQL) -> save (overwrite, one commit)

A model is rebuilt only when what it is built from changed: each rebuild's commit records (in its
snapshot summary) the snapshot of every Silver table the model read and a fingerprint of its SQL and
columns. A run that finds the same Silver snapshots and the same definition keeps the table as it is, so
a run with nothing new costs one catalog look-up per table; a new table, a changed SQL file or table
definition, and a table without that record (built before it was kept) are rebuilt.

Each SQL file reads the temporary views `silver_<dataset>` of the datasets its model declares it reads,
so the same text runs against the local catalog and the Glue Data Catalog, whatever the databases are
called there.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl import metrics, pipeline, registry
from etl.catalog import table_identifier
from etl.dataset import GoldModel
from etl.spark.branches import current_snapshot, writes_on_branch
from etl.spark.jobs import (
    add_maintenance_arguments,
    ensure_tables,
    glue_session,
    maintenance_policy,
    parse_job_arguments,
)
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.tables import TableDefinition


@dataclass(frozen=True)
class GoldArguments:
    silver_database: str
    gold_database: str
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    # The branch the models read Silver on and are written to (etl/spark/branches.py); None: `main`.
    # On a branch the maintenance waits for the publishing, which must find `main` unchanged.
    branch: str | None = None


@dataclass(frozen=True)
class GoldSummary:
    rows: dict[str, int]  # gold table -> rows after the rebuild
    # Tables kept as they were: the Silver tables they read and their definition are unchanged.
    up_to_date: tuple[str, ...] = ()
    maintenance: tuple[str, ...] = ()  # snapshot expiries: each rebuild leaves the previous copy behind
    # Columns added or widened before the rebuild (etl/spark/schema_evolution.py).
    schema_changes: tuple[str, ...] = ()


def parse_args(argv: Sequence[str]) -> GoldArguments:
    parser = argparse.ArgumentParser(prog="gold", description=__doc__, allow_abbrev=False)
    parser.add_argument(pipeline.SILVER_DATABASE, required=True)
    parser.add_argument(pipeline.GOLD_DATABASE, required=True)
    parser.add_argument(pipeline.BRANCH, default=None, help="the run's branch (default: main)")
    add_maintenance_arguments(parser)
    args = parse_job_arguments(parser, argv)
    return GoldArguments(
        args.silver_database, args.gold_database, maintenance_policy(args), args.branch or None
    )


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    with metrics.published_run(metrics.namespace_argument(argv), pipeline.GOLD.name) as published:
        published.counts.update(run_metrics(run(glue_session("lakehouse-gold"), args)))


def run_metrics(summary: GoldSummary) -> dict[str, int]:
    """The counts a Gold run publishes, from its summary: the rows of each table."""
    return {metrics.table_rows(table): rows for table, rows in summary.rows.items()}


class SilverMissing(RuntimeError):
    """A Silver table a Gold model reads does not exist yet: the Silver job creates it on its first run."""


# The snapshot summary property of a Gold commit naming what the rows were built from.
BUILT_FROM = "lakehouse.built-from"


@writes_on_branch
def run(spark: SparkSession, args: GoldArguments) -> GoldSummary:
    models = registry.gold_models()
    schema_changes = tuple(ensure_tables(spark, args.gold_database, tuple(model.table for model in models)))
    silver = sorted({name for m in models for name in m.reads})
    # Read before the views: a Silver commit in between makes the next run rebuild again, never miss it.
    snapshots = silver_snapshots(spark, args.silver_database, silver)
    load_silver_views(spark, args.silver_database, silver)
    rows = {}
    up_to_date = []
    maintenance = []
    for model in models:
        table = model.table
        source = built_from(model, snapshots)
        current = load_current_build(spark, table_identifier(args.gold_database, table.name))
        if current is not None and current[0] == source:
            rows[table.name] = current[1]
            up_to_date.append(table.name)
            continue
        aggregate = transform(spark, model)
        rows[table.name] = save(aggregate, table, args.gold_database, source)
        if args.branch is None:
            maintenance += maintain(spark, args.gold_database, table.name, args.maintenance, compact=False)
    return GoldSummary(
        rows=rows,
        up_to_date=tuple(up_to_date),
        maintenance=tuple(maintenance),
        schema_changes=schema_changes,
    )


def silver_snapshots(spark: SparkSession, database: str, datasets: Sequence[str]) -> dict[str, str]:
    """The current snapshot of each dataset's Silver table (a catalog look-up, no Spark job)."""
    snapshots = {}
    for name in datasets:
        identifier = table_identifier(database, name)
        # Gold only reads Silver (its role cannot create tables there), so a missing table is an error.
        if not spark.catalog.tableExists(identifier):
            raise SilverMissing(f"{identifier} does not exist yet: run the Silver job first")
        snapshots[name] = current_snapshot(spark, identifier)
    return snapshots


def built_from(model: GoldModel, snapshots: dict[str, str]) -> str:
    """What a build of the model reads: a fingerprint of its SQL and columns, and the Silver snapshots."""
    definition = registry.gold_sql(model) + repr(model.table.columns) + repr(model.table.partitioned_by)
    fingerprint = hashlib.sha256(definition.encode()).hexdigest()[:16]
    return " ".join([fingerprint, *(f"{name}@{snapshots[name]}" for name in sorted(model.reads))])


def load_current_build(spark: SparkSession, identifier: str) -> tuple[str, int] | None:
    """(what the table's current rows were built from, how many there are), or None when unknown."""
    current = current_snapshot(spark, identifier)
    if current == "none":
        return None
    summary = spark.sql(
        f"SELECT summary['{BUILT_FROM}'] AS source, summary['total-records'] AS total "
        f"FROM {identifier}.snapshots WHERE snapshot_id = {int(current)}"
    ).first()
    if summary is None or summary["source"] is None:
        return None
    return str(summary["source"]), int(summary["total"])


def silver_view(dataset: str) -> str:
    """The temporary view the Gold SQL reads a dataset's Silver table through."""
    return f"silver_{dataset}"


def load_silver_views(spark: SparkSession, database: str, datasets: Sequence[str]) -> None:
    for name in datasets:
        identifier = table_identifier(database, name)
        spark.table(identifier).createOrReplaceTempView(silver_view(name))


def transform(spark: SparkSession, model: GoldModel) -> DataFrame:
    table = model.table
    aggregate = spark.sql(registry.gold_sql(model))
    # Cast to the table's column types, so the SQL need not repeat them.
    return aggregate.select(*(F.col(c.name).cast(c.type).alias(c.name) for c in table.columns))


def save(aggregate: DataFrame, table: TableDefinition, database: str, source: str) -> int:
    """Replace the table's rows in one commit (readers see the old or the new table, never a mix), which
    records what they were built from (`source`, see built_from)."""
    identifier = table_identifier(database, table.name)
    aggregate.writeTo(identifier).option(f"snapshot-property.{BUILT_FROM}", source).overwrite(F.lit(True))
    spark = aggregate.sparkSession
    latest_snapshot = f"SELECT summary FROM {identifier}.snapshots ORDER BY committed_at DESC LIMIT 1"
    summary = spark.sql(f"SELECT summary['total-records'] AS total FROM ({latest_snapshot})").first()
    return int(summary["total"]) if summary is not None else 0


if __name__ == "__main__":
    main(sys.argv[1:])
