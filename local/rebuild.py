"""Rebuild Silver and Gold from Bronze: drop their tables and replay every run that has a manifest.

Bronze keeps every record as received, so a damaged, dropped or wrongly changed table can always be
restored from it. With the ledger gone, the Silver job finds every run pending and merges them in one
batch, which gives the same tables as merging them one by one (ties go to the first received); the
quarantine is rebuilt with the first delivery of each rejected record. Runs set aside by a repair are
skipped: the run that re-ingested their window holds their records. Before anything is dropped, every
object a replay reads is checked, and Bronze must hold every window the tables hold: after a repair or a
rewind, the window waits for the next pipeline run to ingest it again, and a replay before that run would
leave its records out of the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl import registry
from etl.bronze.layout import BronzeLayout, list_run_ids, list_set_aside, read_manifest, read_watermark
from etl.catalog import table_identifier
from etl.gold import job as gold
from etl.silver import job as silver
from etl.spark.schema_evolution import forget_tables
from etl.storage import ObjectStore, open_store
from etl.tables import TableDefinition
from etl.timestamps import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class RebuildRefused(RuntimeError):
    """Bronze cannot give back every record the tables hold yet: nothing was dropped."""


@dataclass(frozen=True)
class Rebuilt:
    silver: dict[str, silver.SilverSummary]  # per dataset
    gold: gold.GoldSummary


def rebuild(spark: SparkSession, bronze_root: str, silver_database: str, gold_database: str) -> Rebuilt:
    """Every dataset is replayed: they share the ledger, which goes first. If the rebuild stops half way,
    the next run finds every run pending and finishes the replay, instead of refusing (or trusting) a
    ledger whose tables are gone."""
    refuse_incomplete_bronze(bronze_root, silver_database)
    return replay(spark, bronze_root, silver_database, gold_database)


def replay(spark: SparkSession, bronze_root: str, silver_database: str, gold_database: str) -> Rebuilt:
    """`rebuild` after its checks: for a caller that has just made them (`refuse_incomplete_bronze`, which
    needs no Spark), holding the data directory since."""
    _drop(spark, silver_database, registry.silver_tables())  # the ledger first
    _drop(spark, gold_database, registry.gold_tables())
    merged = {
        d.name: silver.run(spark, silver.SilverArguments(bronze_root, silver_database, dataset=d.name))
        for d in registry.datasets()
    }
    rebuilt = gold.run(spark, gold.GoldArguments(silver_database, gold_database))
    return Rebuilt(merged, rebuilt)


def refuse_incomplete_bronze(bronze_root: str, silver_database: str) -> None:
    """Refuse (RebuildRefused, DamagedBronzeObject) a replay that would leave records out of the tables:
    found after the drop, the tables would stay short until the way out was taken. Reads every object on
    the driver."""
    store = open_store(bronze_root)
    for dataset in registry.datasets():
        refuse_window_in_waiting(store, BronzeLayout(dataset.name))
        args = silver.SilverArguments(bronze_root, silver_database, dataset=dataset.name)
        manifests, _ = silver.load_pending_runs(store, args, ())  # every run, as the replay finds them
        for manifest in manifests:
            damaged = silver.find_damaged_object(store, [manifest])
            if damaged is not None:
                raise silver.DamagedBronzeObject(
                    f"{damaged}. Nothing was dropped. Set the run aside: `lakehouse bronze repair "
                    f"{manifest.run_id} --dataset {dataset.name} --bronze-root {bronze_root}`, then run the "
                    "pipeline, which ingests its window again; rebuild after that if you still need to"
                )


def refuse_window_in_waiting(store: ObjectStore, layout: BronzeLayout) -> None:
    """RebuildRefused when the watermark is behind a run's (a repair or rewind moved it back): the records
    of the window in between are in the tables, but in no run a replay reads until it is ingested again."""
    watermark = read_watermark(store, layout)
    if watermark is None:
        return
    run_ids = {*list_run_ids(store, layout), *list_set_aside(store, layout)}
    reached = [parse_rfc3339(m.watermark) for r in run_ids if (m := read_manifest(store, layout, r))]
    newest = max((instant for instant in reached if instant is not None), default=None)
    if newest is not None and watermark < newest:
        raise RebuildRefused(
            f"the {layout.dataset} watermark ({format_rfc3339(watermark)}) is behind its runs in Bronze "
            f"({format_rfc3339(newest)}): a repair or rewind left a window to ingest again, and a rebuild "
            "now would leave its records out. Nothing was dropped. Run the pipeline first, then rebuild"
        )


def _drop(spark: SparkSession, database: str, tables: tuple[TableDefinition, ...]) -> None:
    identifiers = [table_identifier(database, table.name) for table in tables]
    for identifier in identifiers:
        spark.sql(f"DROP TABLE IF EXISTS {identifier} PURGE")
    forget_tables(spark, identifiers)  # so that the jobs create them again in this session
