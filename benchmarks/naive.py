"""The naive alternative to the incremental MERGE: rebuild Silver from all of Bronze and overwrite it."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl.bronze import BronzeLayout, list_run_ids, read_manifest
from etl.catalog import table_identifier
from etl.storage import open_store
from etl.tables import SILVER_ORDERS, SILVER_ORDERS_QUARANTINE
from etl.transform.job import load_raw_records
from etl.transform.orders import accepted_orders, latest_versions, quarantined_records, validate_orders


def rebuild_silver(spark: SparkSession, bronze_root: str, database: str) -> int:
    """Re-validate and de-duplicate every run ever ingested, then overwrite both Silver tables."""
    store = open_store(bronze_root)
    layout = BronzeLayout("orders")
    manifests = [read_manifest(store, layout, run_id) for run_id in list_run_ids(store, layout)]
    raw = load_raw_records(spark, store, [m for m in manifests if m is not None])
    validated = validate_orders(raw).cache()
    latest = latest_versions(accepted_orders(validated)).select(*SILVER_ORDERS.column_names)
    latest.writeTo(table_identifier(database, SILVER_ORDERS.name)).overwrite(F.lit(True))
    quarantined_records(validated).writeTo(
        table_identifier(database, SILVER_ORDERS_QUARANTINE.name)
    ).overwrite(F.lit(True))
    rows = latest.count()
    validated.unpersist()
    return rows
