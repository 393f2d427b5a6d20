"""Silver job: merge every ingestion run of a dataset not merged yet into silver.<dataset> and its quarantine.

One generic job for every dataset: `--dataset NAME` picks the declaration (etl/registry.py) that says how
its records are checked, typed, keyed and versioned.

    main -> load_pending_runs -> read Bronze and validate (one step) -> de-duplicate
         -> save_quarantine -> save_latest (MERGE) -> save_ledger

Runs that only re-deliver records already merged (what a run over a source with nothing new receives:
the records at the watermark again) are recognised on the driver and only recorded in the ledger
(etl/silver/redelivery.py): no Spark job reads, validates or merges them.

On a run's branch (`--branch`, etl/spark/branches.py) each save_* creates the branch on its table just
before writing it, so a table the run leaves alone (the quarantine of a batch without a rejected record,
all but the ledger in a re-delivery, every table when nothing is pending) gets no branch and no commit.

Re-running is safe at every point: runs listed in silver.ingestion_runs are skipped, the quarantine is
written with an insert-if-absent MERGE keyed by the record's text and reason (a record delivered again,
by any run, is quarantined once), and the MERGE only takes versions newer than the stored ones.
The ledger is written last, so a run is either fully merged or retried.

Before anything is written the job refuses, in one line that says the way out: a Silver table missing
while the ledger lists merged runs (`lakehouse rebuild`), a hole between the windows of the runs to merge
and the runs before them (`lakehouse bronze rewind`), and, when reading fails, a damaged Bronze object
(`lakehouse bronze repair`). A table whose definition asks for a change Iceberg cannot apply is refused
too (etl/spark/schema_evolution.py, README "Change a schema"); additive changes are applied first.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from pyspark.sql import DataFrame, Row, SparkSession, Window
from pyspark.sql import functions as F

from etl import metrics, pipeline, registry
from etl.bronze.layout import (
    BronzeLayout,
    RunManifest,
    damage_of,
    list_page_run_ids,
    list_run_ids,
    list_set_aside,
    read_manifest,
)
from etl.catalog import table_identifier
from etl.dataset import Dataset
from etl.silver import quick_path
from etl.silver.bronze_lines import BronzeSlices, ObjectToRead, bronze_slices
from etl.silver.merge_commit import MergeCounts, merge_and_count
from etl.silver.records import (
    RAW_SCHEMA,
    accepted_records,
    latest_versions,
    quarantined_records,
    validate_records,
)
from etl.silver.redelivery import Redelivery, find_redelivery
from etl.spark.branches import create_session_branch, writes_on_branch
from etl.spark.checkpoints import kept_once
from etl.spark.commit_conflicts import retry_on_conflict
from etl.spark.jobs import (
    add_maintenance_arguments,
    ensure_tables,
    glue_session,
    maintenance_policy,
    parse_job_arguments,
)
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.storage import ObjectStore, open_store
from etl.tables import SILVER_INGESTION_RUNS
from etl.timestamps import format_rfc3339, require_rfc3339

logger = logging.getLogger(__name__)

# The dataset in a manifest's URI, as BronzeLayout.manifest_key writes it.
MANIFEST_DATASET = r"_manifests/([^/]+)/[^/]+\.json$"
# A batch of more records than this is checkpointed to storage, a smaller one (an incremental run) cached:
# writing a few thousand rows out and reading them back costs more than computing them again would, on
# the rare loss of an executor that held them.
CHECKPOINT_ABOVE_RECORDS = 100_000


class BronzeMismatch(RuntimeError):
    """Bronze holds fewer or more records than a run manifest lists: refuse to merge a partial run."""


class DamagedBronzeObject(BronzeMismatch):
    """A Bronze object of a run to merge cannot be read whole."""


class BronzeGap(RuntimeError):
    """The runs to merge do not start where the runs before them ended: records would be lost."""


class SilverTableMissing(RuntimeError):
    """A Silver table is gone while the ledger lists merged runs: recreating it empty would lose them."""


class RunCounts(NamedTuple):
    """What the Silver job made of one ingestion run's records."""

    records: int
    accepted: int
    quarantined: int


@dataclass(frozen=True)
class SilverArguments:
    bronze_root: str
    silver_database: str
    dataset: str  # a name declared under datasets/ (etl/registry.py)
    run_id: str | None = None  # the run the caller expects to be merged (with any other pending run)
    manifest: str | None = None  # where the caller says that run's manifest is
    maintenance: MaintenancePolicy = field(default_factory=MaintenancePolicy)
    # Where the validated batch is checkpointed (s3://<silver bucket>/_checkpoints in AWS); None: a
    # temporary local directory, which only a local Spark can use.
    checkpoint_root: str | None = None
    # The branch every table is read and written on (write-audit-publish, etl/spark/branches.py); None:
    # `main`. On a branch the maintenance waits for the publishing, which must find `main` unchanged.
    branch: str | None = None


@dataclass(frozen=True)
class SilverSummary:
    runs: tuple[str, ...] = ()
    records: int = 0  # read from Bronze
    accepted: int = 0  # passed validation (before de-duplication)
    quarantined: int = 0
    # Read from the MERGE's commit (etl/silver/merge_commit.py). None: a copy-on-write commit does not
    # record which of the rows it rewrote were updated.
    inserted: int = 0
    updated: int | None = 0
    per_run: dict[str, RunCounts] = field(default_factory=dict)
    maintenance: tuple[str, ...] = ()  # compactions and snapshot expiries done after the merge
    # Fields of the records that the dataset does not know, and how many records carried each.
    unknown_fields: dict[str, int] = field(default_factory=dict)
    # Columns added or widened before the merge (etl/spark/schema_evolution.py).
    schema_changes: tuple[str, ...] = ()
    # The runs only re-delivered records already merged: recorded in the ledger, nothing else done.
    redelivered: bool = False

    @property
    def merged(self) -> int | None:
        return None if self.updated is None else self.inserted + self.updated

    @property
    def not_merged(self) -> int | None:
        """Accepted versions the MERGE did not take: superseded within the batch, or not newer than the
        stored version (derived: accepted minus merged)."""
        merged = self.merged
        return None if merged is None else self.accepted - merged


def parse_args(argv: Sequence[str]) -> SilverArguments:
    parser = argparse.ArgumentParser(prog="silver", description=__doc__, allow_abbrev=False)
    parser.add_argument(pipeline.BRONZE_ROOT, required=True, help="s3://bucket[/prefix] or a local directory")
    parser.add_argument(pipeline.SILVER_DATABASE, required=True)
    parser.add_argument(pipeline.DATASET, required=True, help="a dataset declared under datasets/")
    parser.add_argument(pipeline.RUN_ID, default=None)
    parser.add_argument(pipeline.MANIFEST, default=None)
    parser.add_argument(
        pipeline.CHECKPOINT_ROOT, default=None, help="s3://bucket/prefix or a local directory"
    )
    parser.add_argument(pipeline.BRANCH, default=None, help="the run's branch (default: main)")
    add_maintenance_arguments(parser)
    args = parse_job_arguments(parser, argv)
    return SilverArguments(
        args.bronze_root,
        args.silver_database,
        args.dataset,
        args.run_id or None,
        args.manifest or None,
        maintenance_policy(args),
        args.checkpoint_root or None,
        args.branch or None,
    )


def main(argv: Sequence[str]) -> None:
    args = parse_args(argv)
    namespace = metrics.namespace_argument(argv)
    with metrics.published_run(namespace, pipeline.SILVER.name, args.dataset) as published:
        published.counts.update(run_metrics(run(glue_session("lakehouse-silver"), args)))


def run_metrics(summary: SilverSummary) -> dict[str, int]:
    """The counts a Silver run publishes, from its summary."""
    counts = {
        metrics.RECORDS_READ: summary.records,
        metrics.RECORDS_ACCEPTED: summary.accepted,
        # Re-delivered runs write nothing to the quarantine: their rejected records are there already.
        metrics.RECORDS_QUARANTINED: 0 if summary.redelivered else summary.quarantined,
    }
    if summary.merged is not None:  # a copy-on-write commit does not record it
        counts[metrics.RECORDS_MERGED] = summary.merged
    return counts


@writes_on_branch
def run(spark: SparkSession, args: SilverArguments) -> SilverSummary:
    dataset = registry.dataset(args.dataset)
    merged = load_merged_runs(spark, args.silver_database, dataset)
    refuse_missing_tables(spark, args.silver_database, dataset, merged)
    schema_changes = tuple(
        ensure_tables(spark, args.silver_database, (*dataset.tables, SILVER_INGESTION_RUNS))
    )
    store = open_store(args.bronze_root)
    manifests, newest_merged = load_pending_runs(store, args, merged)
    if not manifests:
        return SilverSummary(schema_changes=schema_changes)
    redelivery = find_redelivery(store, manifests, newest_merged, dataset)
    if redelivery is not None:
        summary = save_redelivery(spark, store, manifests, redelivery, args.silver_database)
        return replace(summary, schema_changes=schema_changes)
    try:
        return replace(merge_runs(spark, store, manifests, args, dataset), schema_changes=schema_changes)
    except Exception as error:
        damaged = find_damaged_object(store, manifests)
        if damaged is None:
            raise
        raise DamagedBronzeObject(damaged + _repair_hint(args, manifests, damaged)) from error


def merge_runs(
    spark: SparkSession,
    store: ObjectStore,
    manifests: Sequence[RunManifest],
    args: SilverArguments,
    dataset: Dataset,
) -> SilverSummary:
    """Validate, quarantine and MERGE the runs' records, then record the runs in the ledger."""
    # Bronze is read where it is validated, in the executors' Python (etl/silver/bronze_lines.py).
    # Kept once: every later step reads it, and its rows must not be re-read nor re-validated. A large
    # batch is checkpointed, reliably (to the run's directory, not kept on the executors: FLEX may take
    # executors away), which also cuts its long plan; a small one is cached, and computed again from
    # Bronze should an executor take cached blocks away (etl/spark/checkpoints.py).
    slices = bronze_slices_of(spark, args.bronze_root, manifests)
    if not quick_path.available():  # the same results, more slowly: see README, "Versions"
        logger.warning("msgspec is not installed here: every record is validated by the rules alone")
    large = sum(m.records for m in manifests) > CHECKPOINT_ABOVE_RECORDS
    validated_rows = validate_records(slices.frame(spark), dataset, lines=slices.read_lines())
    # Named after the dataset and the run: the Silver jobs of one pipeline run share its run id, and in
    # AWS they run side by side under one checkpoint root.
    checkpoint = f"{dataset.name}-{manifests[-1].run_id}"
    with kept_once(spark, validated_rows, args.checkpoint_root, checkpoint, large) as validated:
        per_run, unknown_fields = count_per_run(validated, manifests)
        accepted = accepted_records(validated, dataset)
        latest = latest_versions(accepted, dataset)
        # Known before the quarantine is written: a batch without a rejected record costs no MERGE.
        if any(counts.quarantined for counts in per_run.values()):
            save_quarantine(spark, quarantined_records(validated), args.silver_database, dataset)
        inserted, updated = save_latest(spark, latest, args.silver_database, dataset)
        save_ledger(spark, manifests, per_run, unknown_fields, args.silver_database, store)
    # On a branch the maintenance waits for the publishing (the Audit step), which must find `main`
    # unchanged: a compaction commits to `main`.
    maintenance = (
        ()
        if args.branch is not None
        else save_maintenance(spark, args.silver_database, dataset, args.maintenance)
    )

    return SilverSummary(
        runs=tuple(m.run_id for m in manifests),
        records=sum(counts.records for counts in per_run.values()),
        accepted=sum(counts.accepted for counts in per_run.values()),
        quarantined=sum(counts.quarantined for counts in per_run.values()),
        inserted=inserted,
        updated=updated,
        per_run=per_run,
        maintenance=maintenance,
        unknown_fields=_totals(unknown_fields.values()),
    )


def load_merged_runs(spark: SparkSession, database: str, dataset: Dataset) -> list[str]:
    """The runs of the dataset the ledger lists, newest first: the job's only read of the ledger."""
    ledger = table_identifier(database, SILVER_INGESTION_RUNS.name)
    if not spark.catalog.tableExists(ledger):
        return []
    # Sorted here, not by Spark: a sort costs a shuffle (two Spark jobs) for a few rows per run.
    rows = _ledger_of(spark, ledger, dataset.name).select("run_id", "ingested_at").collect()
    return [row.run_id for row in sorted(rows, key=_ledger_order, reverse=True)]


def _ledger_order(row: Row) -> tuple[bool, datetime, bool, str]:
    """Reversed, Spark's `ORDER BY ingested_at DESC, run_id DESC`: newest first, nulls last."""
    return (
        row.ingested_at is not None,
        row.ingested_at or datetime.min,
        row.run_id is not None,
        row.run_id or "",
    )


def load_pending_runs(
    store: ObjectStore, args: SilverArguments, merged_runs: Sequence[str]
) -> tuple[list[RunManifest], RunManifest | None]:
    """Manifests of the finished ingestion runs not in `merged_runs`, oldest first, and the manifest of
    the newest merged run (None when nothing is pending, or no merged run has one)."""
    layout = BronzeLayout(args.dataset)
    merged = set(merged_runs)
    finished = list_run_ids(store, layout)
    if args.run_id is not None:
        expected = store.uri(layout.manifest_key(args.run_id))
        if args.run_id not in finished:
            raise FileNotFoundError(
                f"ingestion run {args.run_id} has no manifest at {expected}; "
                "it did not finish, or --bronze-root points elsewhere"
            )
        if args.manifest is not None and args.manifest != expected:
            raise ValueError(
                f"the manifest of run {args.run_id} is {args.manifest}, but this job reads {expected}: "
                "the ingestion and the Silver job are configured with different Bronze locations"
            )
    manifests = [read_manifest(store, layout, run_id) for run_id in finished if run_id not in merged]
    pending = sorted((m for m in manifests if m is not None), key=_start_order)
    if not pending:
        return pending, None
    newest_merged = _newest_merged(store, layout, merged_runs, set(finished))
    refuse_gaps(pending, newest_merged, store, args)
    return pending, newest_merged


def refuse_missing_tables(
    spark: SparkSession, database: str, dataset: Dataset, merged_runs: Sequence[str]
) -> None:
    """A Silver table dropped while the ledger lists runs would come back empty and stay short of them."""
    ledger = table_identifier(database, SILVER_INGESTION_RUNS.name)
    if not merged_runs:
        return
    for table in dataset.tables:
        identifier = table_identifier(database, table.name)
        if not spark.catalog.tableExists(identifier):
            raise SilverTableMissing(
                f"{identifier} is missing, but {ledger} lists runs merged into it: run `lakehouse rebuild` "
                "to replay Silver and Gold from Bronze (a normal run would recreate it empty)"
            )


def refuse_gaps(
    pending: Sequence[RunManifest],
    newest_merged: RunManifest | None,
    store: ObjectStore,
    args: SilverArguments,
) -> None:
    """Each run to merge must start at or before the highest watermark reached by the runs before it.

    A hole means a run whose window lies in between is missing (its manifest deleted, say): its records
    would never be merged. A later run that starts at or before the hole (a re-ingestion after
    `lakehouse bronze rewind`) fills it. Without a merged run to compare with, the first run is taken
    as it is: the initial watermark is a setting of the ingestion.
    """
    reached = None if newest_merged is None else _instant(newest_merged.watermark)
    previous = newest_merged
    for position, manifest in enumerate(pending):
        since = _instant(manifest.updated_since)
        if reached is not None and since > reached:
            later = pending[position + 1 :]
            if not any(_instant(m.updated_since) <= reached for m in later):
                raise BronzeGap(_gap_message(manifest, previous, reached, store, args))
        watermark = _instant(manifest.watermark)
        if reached is None or watermark >= reached:
            reached, previous = watermark, manifest


def _gap_message(
    manifest: RunManifest,
    previous: RunManifest | None,
    reached: datetime,
    store: ObjectStore,
    args: SilverArguments,
) -> str:
    layout = BronzeLayout(args.dataset)
    set_aside = set(list_set_aside(store, layout))
    orphans = sorted(list_page_run_ids(store, layout) - set(list_run_ids(store, layout)) - set_aside)
    cause = (
        f"runs with pages but no manifest: {', '.join(orphans)}"
        if orphans
        else "no run in between has a manifest"
    )
    if set_aside:
        cause += f" (set aside by a repair: {', '.join(sorted(set_aside))})"
    before = f" (run {previous.run_id})" if previous is not None else ""
    return (
        f"Bronze has a gap: run {manifest.run_id} ingested changes since {manifest.updated_since}, but the "
        f"runs before it reached only {format_rfc3339(reached)}{before}; {cause}. Nothing was merged. "
        f"Re-ingest the gap: `lakehouse bronze rewind --to {format_rfc3339(reached)}"
        f"{_bronze_root_option(args)}`, then run the pipeline"
    )


def _newest_merged(
    store: ObjectStore, layout: BronzeLayout, merged_runs: Sequence[str], finished: set[str]
) -> RunManifest | None:
    """The manifest of the newest run in the ledger (of its last ten) that still has one: where the
    pending runs start."""
    for run_id in merged_runs[:10]:
        if run_id in finished:
            return read_manifest(store, layout, run_id)
    return None


def find_damaged_object(store: ObjectStore, manifests: Sequence[RunManifest]) -> str | None:
    """One line naming the first damaged object of the runs (read in the driver), or None."""
    for manifest in manifests:
        for obj in manifest.objects:
            damage = damage_of(store, obj)
            if damage is not None:
                return f"Bronze object {store.uri(obj.key)} of run {manifest.run_id} is damaged: {damage}"
    return None


def _repair_hint(args: SilverArguments, manifests: Sequence[RunManifest], damaged: str) -> str:
    run_id = next(m.run_id for m in manifests if f" of run {m.run_id} is damaged" in damaged)
    waiting = len(manifests) - 1
    behind = f"; {waiting} other run{'s wait' if waiting != 1 else ' waits'} to be merged" if waiting else ""
    return (
        f". Nothing was merged{behind}. Set the run aside and ingest its window again: "
        f"`lakehouse bronze repair {run_id}{_bronze_root_option(args)}`, then run the pipeline"
    )


def _bronze_root_option(args: SilverArguments) -> str:
    return f" --dataset {args.dataset} --bronze-root {args.bronze_root}"


def _start_order(manifest: RunManifest) -> tuple[datetime, str]:
    return _instant(manifest.started_at), manifest.run_id


def bronze_slices_of(spark: SparkSession, bronze_root: str, manifests: Sequence[RunManifest]) -> BronzeSlices:
    """The runs' Bronze objects, as the executors read them (etl/silver/bronze_lines.py)."""
    objects = [
        ObjectToRead(obj.key, m.run_id, _instant(m.started_at), obj.records)
        for m in manifests
        for obj in m.objects
    ]
    return bronze_slices(bronze_root, objects, spark.sparkContext.defaultParallelism)


def load_raw_records(spark: SparkSession, bronze_root: str, manifests: Sequence[RunManifest]) -> DataFrame:
    """One row per line of the runs' Bronze objects, with its object key, line number and run (the job
    itself reads and validates them in one step: `validate_records(..., lines=...)`)."""
    slices = bronze_slices_of(spark, bronze_root, manifests)
    if not slices.parts:
        return spark.createDataFrame([], RAW_SCHEMA)
    return slices.frame(spark).mapInArrow(slices.read_lines(), RAW_SCHEMA)


def save_quarantine(spark: SparkSession, rejected: DataFrame, database: str, dataset: Dataset) -> None:
    """Insert each rejected record (text and reason) not already there, as first received.

    A record delivered again (at the inclusive watermark, by a re-ingested window, twice in a page) is
    the same record: it is kept once, with the lineage of its first delivery. The ledger still counts
    every rejection of every run.
    """
    first_received = Window.partitionBy("raw_record", "reason").orderBy(
        "ingested_at", "ingestion_run_id", "source_object", "line_number"
    )
    distinct = rejected.withColumn("_rank", F.row_number().over(first_received)).where("_rank = 1")
    distinct.drop("_rank").createOrReplaceTempView("rejected_records")
    table = table_identifier(database, dataset.quarantine_table.name)
    create_session_branch(spark, table)
    # The MATCHED clause never acts, but makes Spark plan a row-level MERGE, which Iceberg checks against
    # commits made since it read the table: an insert-only MERGE is planned as a plain append, which two
    # racing writers would both commit. The loser is run again, and then finds its records there.
    merge = f"""
        MERGE INTO {table} AS t
        USING rejected_records AS s
        ON t.raw_record = s.raw_record AND t.reason = s.reason
        WHEN MATCHED AND false THEN DELETE
        WHEN NOT MATCHED THEN INSERT *
        """
    retry_on_conflict(spark, table, lambda: spark.sql(merge))


def save_latest(spark: SparkSession, latest: DataFrame, database: str, dataset: Dataset) -> MergeCounts:
    """MERGE the latest versions into silver.<dataset>; what the commit inserted and updated.

    The batch goes to the MERGE as it is: a version not newer than the stored one matches and is left
    alone by the update condition, so no join with the stored keys is needed to classify it first.
    """
    target = table_identifier(database, dataset.name)
    version = dataset.version
    latest.select(*dataset.silver_table.column_names).createOrReplaceTempView("silver_latest")
    on = " AND ".join(f"t.{key} = s.{key}" for key in dataset.keys)
    merge = f"""
        MERGE INTO {target} AS t
        USING silver_latest AS s
        ON {on}
        WHEN MATCHED AND s.{version} > t.{version} THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *
        """
    create_session_branch(spark, target)
    # Another writer's conflicting commit makes Iceberg refuse this one; run again, the MERGE re-reads the
    # table and its snapshot is looked for again.
    return retry_on_conflict(spark, target, lambda: merge_and_count(spark, target, lambda: spark.sql(merge)))


def save_redelivery(
    spark: SparkSession,
    store: ObjectStore,
    manifests: Sequence[RunManifest],
    redelivery: Redelivery,
    database: str,
) -> SilverSummary:
    """Record re-delivered runs in the ledger with the counts a merge would have given them."""
    per_run = {
        m.run_id: RunCounts(
            m.records, redelivery.accepted[m.run_id], m.records - redelivery.accepted[m.run_id]
        )
        for m in manifests
    }
    save_ledger(spark, manifests, per_run, redelivery.unknown_fields, database, store)
    records = sum(len(found) for found in redelivery.lines.values())
    accepted = sum(redelivery.accepted.values())
    return SilverSummary(
        runs=tuple(m.run_id for m in manifests),
        records=records,
        accepted=accepted,
        quarantined=records - accepted,
        per_run=per_run,
        unknown_fields=_totals(redelivery.unknown_fields.values()),
        redelivered=True,
    )


# The ledger columns save_ledger writes, and their types (merged_at is the time of writing).
_LEDGER = (
    ("run_id", "STRING"),
    ("dataset", "STRING"),
    ("manifest", "STRING"),
    ("ingested_at", "TIMESTAMP"),
    ("records", "BIGINT"),
    ("accepted", "BIGINT"),
    ("quarantined", "BIGINT"),
    ("unknown_fields", "MAP<STRING, BIGINT>"),
)


def save_ledger(
    spark: SparkSession,
    manifests: Sequence[RunManifest],
    per_run: dict[str, RunCounts],
    unknown_fields: dict[str, dict[str, int]],
    database: str,
    store: ObjectStore,
) -> None:
    layout = BronzeLayout(manifests[0].dataset)
    rows = [
        (
            m.run_id,
            m.dataset,
            store.uri(layout.manifest_key(m.run_id)),
            _instant(m.started_at),
            *per_run[m.run_id],
            F.create_map(*(F.lit(v) for item in unknown_fields.get(m.run_id, {}).items() for v in item)),
        )
        for m in manifests
    ]
    # Literals, not spark.createDataFrame: rows handed over from Python cost a Python worker on the
    # executors to unpickle them. One array of rows, not a union of one-row plans: a replay of thousands of
    # runs would make Spark analyse a plan thousands of unions deep (1,500 runs: 250 s against 6 s).
    records = (
        F.struct(
            *(F.lit(value).cast(kind).alias(name) for value, (name, kind) in zip(row, _LEDGER, strict=True))
        )
        for row in rows
    )
    ledger = spark.range(1).select(F.inline(F.array(*records))).withColumn("merged_at", F.current_timestamp())
    table = table_identifier(database, SILVER_INGESTION_RUNS.name)
    create_session_branch(spark, table)
    ledger.writeTo(table).append()


def save_maintenance(
    spark: SparkSession, database: str, dataset: Dataset, policy: MaintenancePolicy
) -> tuple[str, ...]:
    """Maintain the tables the job wrote (etl/spark/maintenance.py); what was done."""
    # Only the dataset's table takes merge-on-read deletes; the other tables are appended to.
    return tuple(
        done
        for table in (dataset.silver_table, dataset.quarantine_table, SILVER_INGESTION_RUNS)
        for done in maintain(spark, database, table.name, policy, table.name == dataset.name)
    )


def _ledger_of(spark: SparkSession, ledger: str, dataset: str) -> DataFrame:
    """The ledger's rows for one dataset. Rows merged before the ledger recorded the dataset (or by a
    ledger not yet given the column) are known by their manifest's path, which names the dataset."""
    rows = spark.table(ledger)
    from_manifest = F.regexp_extract("manifest", MANIFEST_DATASET, 1)
    recorded = F.coalesce(F.col("dataset"), from_manifest) if "dataset" in rows.columns else from_manifest
    return rows.where(recorded == dataset)


def count_per_run(
    validated: DataFrame, manifests: Sequence[RunManifest]
) -> tuple[dict[str, RunCounts], dict[str, dict[str, int]]]:
    """What each run's records came to, and the fields the dataset does not know with how many of the
    run's records carried each (named by validation: etl/silver/records.py), in one aggregation of the
    validated batch.

    Each record counts once under a null field, and once under each unknown field it carries.
    """
    carried = F.coalesce(F.col("unknown_fields"), F.array().cast("array<string>"))
    fields = F.concat(F.array(F.lit(None).cast("string")), carried)
    rows = (
        validated.select("ingestion_run_id", "reason", F.explode(fields).alias("field"))
        .groupBy("ingestion_run_id", "field")
        .agg(
            F.count(F.lit(1)).alias("records"),
            F.count(F.when(F.col("reason").isNull(), 1)).alias("accepted"),
        )
        .collect()
    )
    counted: dict[str, RunCounts] = {}
    unknown: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.field is None:
            counted[row.ingestion_run_id] = RunCounts(row.records, row.accepted, row.records - row.accepted)
        else:
            unknown.setdefault(row.ingestion_run_id, {})[row.field] = row.records
    per_run = {m.run_id: counted.get(m.run_id, RunCounts(0, 0, 0)) for m in manifests}
    for m in manifests:
        held = per_run[m.run_id].records
        if held != m.records:
            raise BronzeMismatch(
                f"run {m.run_id}: its manifest lists {m.records} records, Bronze holds {held}"
            )
    return per_run, unknown


def _totals(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for run in counts:
        for name, records in run.items():
            totals[name] = totals.get(name, 0) + records
    return dict(sorted(totals.items()))


def _instant(text: str) -> datetime:
    return require_rfc3339(text, "a run manifest's started_at")


if __name__ == "__main__":
    main(sys.argv[1:])
