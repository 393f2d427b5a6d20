"""Rebuild Silver and Gold from Bronze: drop their tables and replay every run that has a manifest.

Bronze keeps every record as received, so a damaged, dropped or wrongly changed table can always be
restored from it. With the ledger gone, the Silver job finds every run pending and merges them in one
batch, which gives the same tables as merging them one by one (ties go to the first received); the
quarantine is rebuilt with the first delivery of each rejected record. Runs set aside by a repair are
skipped: the run that re-ingested their window holds their records. Every object a replay reads is checked
before anything is dropped, so a damaged one leaves the tables as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl import registry
from etl.catalog import table_identifier
from etl.gold import job as gold
from etl.silver import job as silver
from etl.spark.schema_evolution import forget_tables
from etl.storage import open_store
from etl.tables import TableDefinition

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Rebuilt:
    silver: dict[str, silver.SilverSummary]  # per dataset
    gold: gold.GoldSummary


def rebuild(spark: SparkSession, bronze_root: str, silver_database: str, gold_database: str) -> Rebuilt:
    """Every dataset is replayed: they share the ledger, which goes first. If the rebuild stops half way,
    the next run finds every run pending and finishes the replay, instead of refusing (or trusting) a
    ledger whose tables are gone."""
    refuse_damaged_bronze(bronze_root, silver_database)
    _drop(spark, silver_database, registry.silver_tables())  # the ledger first
    _drop(spark, gold_database, registry.gold_tables())
    merged = {
        d.name: silver.run(spark, silver.SilverArguments(bronze_root, silver_database, dataset=d.name))
        for d in registry.datasets()
    }
    rebuilt = gold.run(spark, gold.GoldArguments(silver_database, gold_database))
    return Rebuilt(merged, rebuilt)


def refuse_damaged_bronze(bronze_root: str, silver_database: str) -> None:
    """DamagedBronzeObject naming the first damaged object (or gap between runs) a replay would meet: found
    after the drop, it would leave the tables empty until a repair. Reads every object on the driver."""
    store = open_store(bronze_root)
    for dataset in registry.datasets():
        args = silver.SilverArguments(bronze_root, silver_database, dataset=dataset.name)
        manifests, _ = silver.load_pending_runs(store, args, ())  # every run, as the replay finds them
        for manifest in manifests:
            damaged = silver.find_damaged_object(store, [manifest])
            if damaged is not None:
                raise silver.DamagedBronzeObject(
                    f"{damaged}. Nothing was dropped. Set the run aside and ingest its window again: "
                    f"`lakehouse bronze repair {manifest.run_id} --dataset {dataset.name} "
                    f"--bronze-root {bronze_root}`, then rebuild"
                )


def _drop(spark: SparkSession, database: str, tables: tuple[TableDefinition, ...]) -> None:
    identifiers = [table_identifier(database, table.name) for table in tables]
    for identifier in identifiers:
        spark.sql(f"DROP TABLE IF EXISTS {identifier} PURGE")
    forget_tables(spark, identifiers)  # so that the jobs create them again in this session
