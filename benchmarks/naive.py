"""The naive alternative to the incremental MERGE: rebuild Silver from all of Bronze and overwrite it."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl.bronze.layout import BronzeLayout, list_run_ids, read_manifest
from etl.catalog import table_identifier
from etl.registry import dataset
from etl.silver.job import bronze_slices_of
from etl.silver.records import accepted_records, latest_versions, quarantined_records, validate_records
from etl.storage import open_store


def rebuild_silver(spark: SparkSession, bronze_root: str, database: str) -> int:
    """Re-validate and de-duplicate every run ever ingested, then overwrite both Silver tables."""
    store = open_store(bronze_root)
    layout = BronzeLayout("orders")
    manifests = [read_manifest(store, layout, run_id) for run_id in list_run_ids(store, layout)]
    slices = bronze_slices_of(spark, bronze_root, [m for m in manifests if m is not None])
    orders = dataset("orders")
    validated = validate_records(slices.frame(spark), orders, lines=slices.read_lines()).cache()
    latest = latest_versions(accepted_records(validated, orders), orders)
    latest = latest.select(*orders.silver_table.column_names)
    latest.writeTo(table_identifier(database, orders.name)).overwrite(F.lit(True))
    quarantined_records(validated).writeTo(
        table_identifier(database, orders.quarantine_table.name)
    ).overwrite(F.lit(True))
    rows = latest.count()
    validated.unpersist()
    return rows
