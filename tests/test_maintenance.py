"""Table maintenance on real Iceberg tables: compaction of merge-on-read deletes, snapshot expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql import SparkSession

from etl.jobs import ensure_tables
from etl.maintenance import MaintenancePolicy, maintain
from etl.tables import SILVER_ORDERS, SILVER_TABLES

pytestmark = pytest.mark.spark

SCHEMA = ", ".join(f"{c.name} {c.type}" for c in SILVER_ORDERS.columns)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def version(order_id: int, status: str, hours: int) -> tuple[object, ...]:
    updated = T0 + timedelta(hours=hours)
    return (order_id, "C1", status, None, "EUR", T0, updated, None, "r", T0, "o")


@pytest.fixture
def orders(spark: SparkSession) -> str:
    """A merge-on-read silver.orders with three commits, the last two updates that leave delete files."""
    database = f"silver_{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, database, SILVER_TABLES)
    table = f"{database}.orders"
    spark.createDataFrame([version(n, "placed", 0) for n in range(1, 5)], SCHEMA).writeTo(table).append()
    for hours, status in ((1, "paid"), (2, "shipped")):
        spark.createDataFrame(
            [version(1, status, hours), version(2, status, hours)], SCHEMA
        ).createOrReplaceTempView("changes")
        spark.sql(
            f"MERGE INTO {table} t USING changes s ON t.order_id = s.order_id "
            "WHEN MATCHED AND s.updated_at > t.updated_at THEN UPDATE SET *"
        )
    return database


def rows(spark: SparkSession, database: str) -> list[tuple[int, str]]:
    return sorted((r.order_id, r.status) for r in spark.table(f"{database}.orders").collect())


def count(spark: SparkSession, database: str, metadata: str) -> int:
    return spark.sql(f"SELECT * FROM {database}.orders.{metadata}").count()


def test_compacts_once_enough_delete_files_pile_up(spark: SparkSession, orders: str) -> None:
    before = rows(spark, orders)
    assert count(spark, orders, "delete_files") == 2

    lenient = MaintenancePolicy(compact_at_delete_files=3, snapshot_retention=timedelta(days=7))
    assert maintain(spark, orders, "orders", lenient) == []
    assert count(spark, orders, "delete_files") == 2

    strict = MaintenancePolicy(compact_at_delete_files=2, snapshot_retention=timedelta(days=7))
    assert maintain(spark, orders, "orders", strict) == [f"compacted {orders}.orders (2 delete files)"]
    assert count(spark, orders, "delete_files") == 0
    assert rows(spark, orders) == before == [(1, "shipped"), (2, "shipped"), (3, "placed"), (4, "placed")]


def test_expires_snapshots_past_the_retention_but_keeps_the_last_ones(
    spark: SparkSession, orders: str
) -> None:
    assert count(spark, orders, "snapshots") == 3
    policy = MaintenancePolicy(snapshot_retention=timedelta(days=1), retain_last=1)

    assert maintain(spark, orders, "orders", policy, compact=False) == []  # nothing is a day old yet
    assert count(spark, orders, "snapshots") == 3

    tomorrow = datetime.now(UTC) + timedelta(days=2)
    done = maintain(spark, orders, "orders", policy, compact=False, now=tomorrow)
    assert done == [f"expired 2 snapshots of {orders}.orders"]
    assert count(spark, orders, "snapshots") == 1
    assert rows(spark, orders)[0] == (1, "shipped")
