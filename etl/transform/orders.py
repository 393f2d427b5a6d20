"""Silver transformations for orders: pure functions, DataFrame in and DataFrame out.

raw records --validate_orders--> validated --accepted_orders--> latest_versions --> MERGE
                                          \\--quarantined_records------------------> quarantine
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from datetime import timedelta

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl.bronze import MAX_CLOCK_SKEW
from etl.tables import SILVER_ORDERS
from etl.transform.rules import Order, Rejected, validate_order

# What the Bronze reader produces: one row per line of a Bronze object.
RAW_SCHEMA = (
    "raw_record STRING, source_object STRING, line_number INT, ingestion_run_id STRING, ingested_at TIMESTAMP"
)

# The order columns of silver.orders (the fields of rules.Order), as validation returns them, plus the reason.
ORDER_COLUMNS = tuple(field.name for field in fields(Order))
_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "STRING": pa.string(),
    "DECIMAL(12,2)": pa.decimal128(12, 2),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}
# The record's top-level fields that validation reads (rules.validate_order): Order's fields carry their
# names. Any other field is counted as unknown in the ledger (etl/source_drift.py).
RECORD_FIELDS = frozenset(ORDER_COLUMNS)
_TYPED = (
    *((c.name, _ARROW_TYPES[c.type], c.type) for c in SILVER_ORDERS.columns if c.name in ORDER_COLUMNS),
    ("reason", pa.string(), "STRING"),
)
_VALIDATED_SCHEMA = RAW_SCHEMA + ", " + ", ".join(f"{name} {sql}" for name, _, sql in _TYPED)

_RAW_NAMES = [column.split()[0] for column in RAW_SCHEMA.split(", ")]
LINEAGE_COLUMNS = ("ingestion_run_id", "ingested_at", "source_object")


def validate_orders(raw: DataFrame, max_clock_skew: timedelta = MAX_CLOCK_SKEW) -> DataFrame:
    """Every raw row with its typed order columns, or a null order and the reason it was rejected.

    The rules run in Python (see rules.py) over Arrow batches; the raw columns pass through unchanged.
    """
    checked = raw.select(*_RAW_NAMES).mapInArrow(_check_batches, _VALIDATED_SCHEMA)
    return reject_future_versions(checked, max_clock_skew)


def reject_future_versions(validated: DataFrame, max_clock_skew: timedelta) -> DataFrame:
    """Valid rows stamped more than `max_clock_skew` after their run started get the reason
    future_updated_at: such a version would win over every real later update of the order. The run's
    start, not the job's clock, is the reference, with the tolerance the watermark uses, so that a
    replay of the same runs decides the same way."""
    limit = F.col("ingested_at") + F.expr(f"INTERVAL {int(max_clock_skew.total_seconds())} SECONDS")
    future = F.col("reason").isNull() & (F.col("updated_at") > limit)
    return validated.withColumn(
        "reason", F.when(future, F.lit("future_updated_at")).otherwise(F.col("reason"))
    )


def accepted_orders(validated: DataFrame) -> DataFrame:
    """The valid rows: typed order columns, lineage, and the line (for tie-breaks)."""
    return validated.where(F.col("reason").isNull()).select(*ORDER_COLUMNS, *LINEAGE_COLUMNS, "line_number")


def quarantined_records(validated: DataFrame, quarantined_at: Column | None = None) -> DataFrame:
    """The invalid rows as the quarantine table stores them."""
    return validated.where(F.col("reason").isNotNull()).select(
        "raw_record",
        "reason",
        "source_object",
        "line_number",
        "ingestion_run_id",
        "ingested_at",
        (quarantined_at if quarantined_at is not None else F.current_timestamp()).alias("quarantined_at"),
    )


def latest_versions(orders: DataFrame) -> DataFrame:
    """One row per order_id: the latest updated_at.

    Ties (same order_id and updated_at) go to the version received first: earliest ingestion run, then
    Bronze object, then line. The MERGE keeps the stored version on a tie too, so the result does not
    depend on how runs are grouped into Silver jobs.
    """
    first_received = Window.partitionBy("order_id").orderBy(
        F.col("updated_at").desc(),
        F.col("ingested_at").asc(),
        F.col("ingestion_run_id").asc(),
        F.col("source_object").asc(),
        F.col("line_number").asc(),
    )
    ranked = orders.withColumn("_rank", F.row_number().over(first_received))
    return ranked.where(F.col("_rank") == 1).drop("_rank").drop("line_number")


def _check_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        columns: dict[str, list[object]] = {name: [] for name, _, _ in _TYPED}
        for text in batch.column("raw_record").to_pylist():
            try:
                order = validate_order(text)
            except Rejected as rejected:
                _append_rejected(columns, rejected.reason)
                continue
            except Exception:  # a bug in a rule: quarantine the record rather than fail every run on it
                _append_rejected(columns, "check_failed")
                continue
            for name, values in columns.items():
                values.append(None if name == "reason" else getattr(order, name))
        typed = [pa.array(columns[name], type=arrow) for name, arrow, _ in _TYPED]
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, *typed], names=[*batch.schema.names, *(name for name, _, _ in _TYPED)]
        )


def _append_rejected(columns: dict[str, list[object]], reason: str) -> None:
    for name, values in columns.items():
        values.append(reason if name == "reason" else None)
