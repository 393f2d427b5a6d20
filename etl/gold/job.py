"""Gold job: bring each declared Gold model (datasets/gold) up to date with Silver, one commit per table.

    main -> load_silver_views -> for each model: plan_refresh -> transform (its SQL)
         -> the models side by side: save (one commit per table)

A table whose Silver input changed is rebuilt in full by default (`--refresh full`). With
`--refresh incremental`, a model that declares its `key` and `touched` SQL (etl/dataset.py) gets only the
rows whose key a Silver change touched recomputed; its other rows are kept. The change is read from the
Silver snapshots the table was last built from to the current ones (etl/gold/changes.py), both the old and
the new version of every changed row, so a row that moves group leaves its old one too. Each commit writes
the whole table (kept rows plus recomputed ones), so readers see the old or the new table, never a mix.
An incremental run rebuilds in full a new table, a changed definition, a model without a key, and a table
whose change cannot be read (a snapshot expired), and its summary says which and why. The tests hold the
two equal after every batch (tests/test_gold_incremental.py). Full stays the default because it measured
faster: the recompute still runs each model's SQL over all of Silver (docs/benchmarks.md, "Gold").

A model is rebuilt only when what it is built from changed: each rebuild's commit records (in its
snapshot summary) the snapshot of every Silver table the model read and a fingerprint of its SQL and
columns. A run that finds the same Silver snapshots and the same definition keeps the table as it is, so
a run with nothing new costs one metadata read per table (no Spark job, and no branch created on it); a
new table, a changed SQL file or table definition, and a table without that record (built before it was
kept) are rebuilt.

Each SQL file reads the temporary views `silver_<dataset>` of the datasets its model declares it reads,
so the same text runs against the local catalog and the Glue Data Catalog, whatever the databases are
called there.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial, reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from etl import metrics, pipeline, registry
from etl.catalog import table_identifier
from etl.dataset import GoldModel
from etl.gold.changes import ChangedRows, ChangesUnavailable, changed_rows
from etl.spark.branches import (
    create_branch,
    current_snapshot,
    session_snapshot,
    snapshot_summary,
    writes_on_branch,
)
from etl.spark.jobs import (
    add_maintenance_arguments,
    ensure_tables,
    glue_session,
    maintenance_policy,
    parse_job_arguments,
)
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.spark.side_by_side import side_by_side
from etl.tables import TableDefinition


@dataclass(frozen=True)
class GoldArguments:
    silver_database: str
    gold_database: str
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    # `--refresh incremental`: recompute only the rows a Silver change touched (see the module docstring).
    incremental: bool = False
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
    # Tables brought up to date incrementally -> the keys (rows) recomputed; the other rows were kept.
    incremental: dict[str, int] = field(default_factory=dict)
    # Tables rebuilt in full although the run was incremental -> why (new table, changed definition, ...).
    full_rebuilds: dict[str, str] = field(default_factory=dict)


def parse_args(argv: Sequence[str]) -> GoldArguments:
    parser = argparse.ArgumentParser(prog="gold", description=__doc__, allow_abbrev=False)
    parser.add_argument(pipeline.SILVER_DATABASE, required=True)
    parser.add_argument(pipeline.GOLD_DATABASE, required=True)
    parser.add_argument(
        pipeline.GOLD_REFRESH,
        choices=pipeline.GOLD_REFRESH_MODES,
        default="full",
        help="full (default): rebuild every row of a table whose Silver input changed; incremental: "
        "recompute only the rows the change touched (about 3 times slower at 200k to 3M orders: "
        "docs/benchmarks.md)",
    )
    parser.add_argument(pipeline.BRANCH, default=None, help="the run's branch (default: main)")
    add_maintenance_arguments(parser)
    args = parse_job_arguments(parser, argv)
    return GoldArguments(
        args.silver_database,
        args.gold_database,
        maintenance_policy(args),
        incremental=args.refresh == "incremental",
        branch=args.branch or None,
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
    # No branch here: it is created on a table only when the table is rebuilt (below), so that a table the
    # run keeps has no branch for the Audit step to measure and drop.
    tables = tuple(model.table for model in models)
    schema_changes = tuple(ensure_tables(spark, args.gold_database, tables))
    silver = sorted({name for m in models for name in m.reads})
    # Read before the views: a Silver commit in between makes the next run rebuild again, never miss it.
    snapshots = silver_snapshots(spark, args.silver_database, silver)
    load_silver_views(spark, args.silver_database, silver)
    rows = {}
    up_to_date = []
    maintenance = []
    incremental: dict[str, int] = {}
    full_rebuilds: dict[str, str] = {}
    changes = SilverChanges(spark, args.silver_database, snapshots)
    rebuilds: list[Rebuild] = []
    # Planned one model at a time: the plans read the catalog and set the session's temporary views.
    for model in models:
        table = model.table
        identifier = table_identifier(args.gold_database, table.name)
        source = built_from(model, snapshots)
        current = load_current_build(spark, identifier)
        if current is not None and current[0] == source:
            rows[table.name] = current[1]
            up_to_date.append(table.name)
            continue
        with failing_model(table):
            aggregate = transform(spark, model)
            plan = (
                plan_refresh(model, source, current[0] if current else None, changes)
                if args.incremental
                else None
            )
            if isinstance(plan, str):
                full_rebuilds[table.name] = plan
                plan = None
            elif plan is not None:
                aggregate = refresh_touched(spark.table(identifier), aggregate, plan, model.key)
                # Counted here, one model at a time: this fills the caches of the Silver change, which
                # models written side by side would otherwise each compute at once.
                incremental[table.name] = plan.count()
        rebuilds.append(Rebuild(table, aggregate, source, plan))
    # Each rebuild writes its own table: they run side by side (etl/spark/side_by_side.py).
    saves = [partial(rebuild.save, args.gold_database, args.branch) for rebuild in rebuilds]
    try:
        saved = side_by_side(saves, MODELS_AT_ONCE, "gold")
    except GoldModelFailed as failure:  # the others ran to their end: say which were written
        done = written_line([r.table.name for r in rebuilds if r.written], args.branch)
        raise GoldModelFailed(failure.table, failure.cause, done) from failure
    for rebuild, written in zip(rebuilds, saved, strict=True):
        name = rebuild.table.name
        rows[name] = written
        if args.branch is None:
            maintenance += maintain(spark, args.gold_database, name, args.maintenance, compact=False)
    changes.release()
    return GoldSummary(
        rows={model.table.name: rows[model.table.name] for model in models},
        up_to_date=tuple(up_to_date),
        maintenance=tuple(maintenance),
        schema_changes=schema_changes,
        incremental=incremental,
        full_rebuilds=full_rebuilds,
    )


# Gold models rebuilt at once: each is a few Spark jobs over Silver, which leave cores idle while the driver
# plans and commits them (docs/benchmarks.md, "Side by side: Gold's models and the Audit step's measures").
MODELS_AT_ONCE = 3


@dataclass
class Rebuild:
    """A planned rebuild of one Gold table: its rows, what they are built from, and for an incremental
    refresh the keys recomputed (cached: unpersisted once the table is written)."""

    table: TableDefinition
    rows: DataFrame
    source: str
    touched: DataFrame | None = None
    written: bool = False  # the commit is made

    def save(self, database: str, branch: str | None) -> int:
        """Write the table (to `branch`, created here, when there is one); its rows after the commit."""
        with failing_model(self.table):
            if branch is not None:
                # Until now the session read the table's `main`, where the branch starts.
                create_branch(self.rows.sparkSession, table_identifier(database, self.table.name), branch)
            rows = save(self.rows, self.table, database, self.source)
        self.written = True
        if self.touched is not None:
            self.touched.unpersist()
        return rows


def written_line(written: Sequence[str], branch: str | None) -> str:
    """Which of the models a Gold step rebuilt were written before it failed."""
    if not written:
        return "no other model written"
    where = f" on branch {branch}" if branch else ""
    return f"the others written{where}: {', '.join(f'gold.{name}' for name in written)}"


class GoldModelFailed(RuntimeError):
    """A Gold model's SQL failed to compile or to run: names the model and its SQL file, and what else the
    step wrote (`written`) when it is known."""

    def __init__(self, table: str, cause: str, written: str = "") -> None:
        self.table, self.cause = table, cause
        also = f" ({written})" if written else ""
        super().__init__(f"gold.{table} (datasets/gold/{table}.sql) failed{also}: {cause}")


@contextmanager
def failing_model(table: TableDefinition) -> Iterator[None]:
    """Raise what fails in the block as GoldModelFailed, naming the model (with the models side by side,
    Spark's own message does not say whose SQL it was)."""
    try:
        yield
    except Exception as error:
        java = getattr(error, "java_exception", None)  # a Py4JJavaError: its JVM message, not the py4j dump
        cause = str(java.toString()) if java is not None else str(error)
        raise GoldModelFailed(table.name, cause.strip()) from error


class SilverChanges:
    """The changed rows of each Silver table since a given snapshot, read once per run and kept in memory
    (the models that read a dataset usually share the snapshot they were last built from)."""

    def __init__(self, spark: SparkSession, database: str, current: dict[str, str]) -> None:
        self.spark, self.database, self.current = spark, database, current
        self._read: dict[tuple[str, str], DataFrame] = {}
        self._kept: list[ChangedRows] = []

    def since(self, dataset: str, snapshot: str) -> DataFrame:
        """Old and new versions of the dataset's rows changed after `snapshot` (raises ChangesUnavailable)."""
        identifier = table_identifier(self.database, dataset)
        if (dataset, snapshot) not in self._read:
            if snapshot == self.current[dataset]:
                rows = self.spark.table(identifier).limit(0)
            elif snapshot == "none":  # the table was empty then: every row is new
                rows = self.spark.table(identifier)
            else:
                keys = registry.dataset(dataset).keys
                changed = changed_rows(self.spark, identifier, keys, snapshot, self.current[dataset])
                self._kept.append(changed)
                rows = changed.rows
            self._read[(dataset, snapshot)] = rows
        return self._read[(dataset, snapshot)]

    def release(self) -> None:
        for changed in self._kept:
            changed.unpersist()


def plan_refresh(
    model: GoldModel, source: str, previous: str | None, changes: SilverChanges
) -> DataFrame | str:
    """The keys of the rows to recompute (cached: the caller unpersists it), or why the table is rebuilt
    in full instead."""
    if not model.key or model.touched is None:
        return "the model declares no key"
    if previous is None:
        return "no earlier build recorded"
    fingerprint, *_ = source.split(" ")
    previous_fingerprint, *_ = previous.split(" ")
    if previous_fingerprint != fingerprint:
        return "its definition changed"
    built_snapshots = silver_snapshots_built_from(previous)
    if sorted(built_snapshots) != sorted(model.reads):
        return "it reads other datasets than at its last build"
    spark = changes.spark
    try:
        for dataset in model.reads:
            changes.since(dataset, built_snapshots[dataset]).createOrReplaceTempView(changed_view(dataset))
    except ChangesUnavailable as e:
        return f"the Silver change cannot be read ({e})"
    key_columns = {c.name: c.type for c in model.table.columns}
    touched = spark.sql(model.touched).select(*(F.col(k).cast(key_columns[k]).alias(k) for k in model.key))
    return touched.distinct().cache()


def changed_view(dataset: str) -> str:
    """The temporary view a model's `touched` SQL reads a dataset's changed rows through."""
    return f"changed_{dataset}"


def _same_key(left: DataFrame, right: DataFrame, key: Sequence[str]) -> Column:
    # Null is a key value like any other (orders of an unknown customer have a null country).
    return reduce(lambda a, b: a & b, (left[k].eqNullSafe(right[k]) for k in key))


def refresh_touched(
    current: DataFrame, aggregate: DataFrame, touched: DataFrame, key: Sequence[str]
) -> DataFrame:
    """The table's rows with those of the touched keys recomputed: kept rows, plus the touched keys' rows
    of the full aggregate (a touched key the aggregate no longer has is gone: its group vanished)."""
    # The touched keys are few next to the rows they filter: broadcast, so neither side is shuffled.
    kept = current.join(F.broadcast(touched), _same_key(current, touched, key), "left_anti")
    recomputed = aggregate.join(F.broadcast(touched), _same_key(aggregate, touched, key), "left_semi")
    return kept.unionByName(recomputed)


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
    """What a build of the model reads: a fingerprint of its SQL, columns, key and touched SQL, and the
    Silver snapshots."""
    definition = registry.gold_sql(model) + repr(model.table.columns) + repr(model.table.partitioned_by)
    if model.key:  # models without a key keep the fingerprint they had before keys existed
        definition += repr(model.key) + repr(model.touched)
    fingerprint = hashlib.sha256(definition.encode()).hexdigest()[:16]
    return " ".join([fingerprint, *(f"{name}@{snapshots[name]}" for name in sorted(model.reads))])


def silver_snapshots_built_from(record: str) -> dict[str, str]:
    """The Silver snapshot of each dataset a build record (`built_from`) names: "none" for an empty table."""
    _, *built = record.split(" ")
    return dict(part.split("@", 1) for part in built)


def load_current_build(spark: SparkSession, identifier: str) -> tuple[str, int] | None:
    """(what the table's current rows were built from, how many there are), or None when unknown.

    Read from the snapshot's summary in the table's metadata on the driver (no Spark job)."""
    current = session_snapshot(spark, identifier)
    summary = snapshot_summary(current) if current is not None else {}
    if BUILT_FROM not in summary:
        return None
    return summary[BUILT_FROM], int(summary["total-records"])


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
    # The commit just made is the head the session reads: its summary counts the rows (no Spark job).
    written = session_snapshot(aggregate.sparkSession, identifier)
    return int(snapshot_summary(written).get("total-records", 0)) if written is not None else 0


if __name__ == "__main__":
    main(sys.argv[1:])
