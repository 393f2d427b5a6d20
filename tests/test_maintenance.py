"""Table maintenance on real Iceberg tables: compaction of merge-on-read deletes, snapshot expiry, orphan
files, and the properties that bound metadata files."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from datasets.orders import DATASET as ORDERS
from etl.spark.jobs import ensure_tables
from etl.spark.maintenance import MaintenancePolicy, maintain
from etl.tables import METADATA_VERSIONS_KEPT, SILVER_INGESTION_RUNS, STORAGE_PROPERTIES
from tests.spark_jobs import spark_jobs

SILVER_ORDERS = ORDERS.silver_table
SILVER_TABLES = (SILVER_INGESTION_RUNS, *ORDERS.tables)

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


def location(spark: SparkSession, database: str, table: str) -> Path:
    row = spark.sql(f"DESCRIBE TABLE EXTENDED {database}.{table}").where("col_name = 'Location'").first()
    assert row is not None
    return Path(row["data_type"].removeprefix("file:"))


def test_removes_files_no_snapshot_references_once_they_are_old_enough(
    spark: SparkSession, orders: str
) -> None:
    before = rows(spark, orders)
    data = location(spark, orders, "orders") / "data"
    stale, fresh = data / "left-by-a-dead-writer.parquet", data / "being-written.parquet"
    for path in (stale, fresh):
        path.write_bytes(b"not referenced")
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    os.utime(stale, (two_days_ago, two_days_ago))
    referenced = {
        Path(r.file_path.removeprefix("file:"))
        for r in spark.sql(f"SELECT * FROM {orders}.orders.all_files").collect()
    }

    policy = MaintenancePolicy(snapshot_retention=timedelta(days=1), orphan_sweep_interval=timedelta(0))
    done = maintain(spark, orders, "orders", policy, compact=False)

    assert done == [f"removed 1 orphan files of {orders}.orders"]
    assert not stale.exists()
    assert fresh.exists()  # younger than a day: it may belong to a commit in progress
    assert all(path.exists() for path in referenced)
    assert rows(spark, orders) == before


def test_orphan_files_are_kept_as_long_as_the_snapshot_retention(spark: SparkSession, orders: str) -> None:
    stray = location(spark, orders, "orders") / "data" / "stray.parquet"
    stray.write_bytes(b"not referenced")
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(stray, (three_days_ago, three_days_ago))
    every_run = timedelta(0)

    week = MaintenancePolicy(snapshot_retention=timedelta(days=7), orphan_sweep_interval=every_run)
    assert maintain(spark, orders, "orders", week, compact=False) == []
    assert stray.exists()
    two_days = MaintenancePolicy(snapshot_retention=timedelta(days=2), orphan_sweep_interval=every_run)
    assert maintain(spark, orders, "orders", two_days, compact=False) == [
        f"removed 1 orphan files of {orders}.orders"
    ]
    assert not stray.exists()


def test_a_table_the_job_created_is_first_swept_one_interval_later(spark: SparkSession, orders: str) -> None:
    stray = location(spark, orders, "orders") / "data" / "stray.parquet"
    stray.write_bytes(b"not referenced")
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(stray, (three_days_ago, three_days_ago))
    policy = MaintenancePolicy(snapshot_retention=timedelta(days=1), orphan_sweep_interval=timedelta(days=1))

    # Its own files are all younger than a day, too young to be removed: listing them would find nothing.
    with spark_jobs(spark) as jobs:
        assert maintain(spark, orders, "orders", policy, compact=False) == []
    assert jobs == []
    assert stray.exists()

    in_two_days = datetime.now(UTC) + timedelta(days=2)
    done = maintain(spark, orders, "orders", policy, compact=False, now=in_two_days)
    assert f"removed 1 orphan files of {orders}.orders" in done
    assert not stray.exists()


def test_orphan_files_are_looked_for_at_most_once_per_sweep_interval(
    spark: SparkSession, orders: str
) -> None:
    stray = location(spark, orders, "orders") / "data" / "stray.parquet"
    policy = MaintenancePolicy(snapshot_retention=timedelta(days=1), orphan_sweep_interval=timedelta(days=1))
    first = datetime.now(UTC) + timedelta(days=2)  # a day after the table's creation
    maintain(spark, orders, "orders", policy, compact=False, now=first)  # the first sweep

    stray.write_bytes(b"not referenced")
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(stray, (three_days_ago, three_days_ago))
    assert maintain(spark, orders, "orders", policy, compact=False, now=first + timedelta(hours=12)) == []
    assert stray.exists()  # swept less than a day ago: not listed again

    done = maintain(spark, orders, "orders", policy, compact=False, now=first + timedelta(days=2))
    assert f"removed 1 orphan files of {orders}.orders" in done
    assert not stray.exists()


def properties(spark: SparkSession, identifier: str) -> dict[str, str]:
    return {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {identifier}").collect()}


def test_every_table_keeps_a_bounded_number_of_metadata_files(spark: SparkSession) -> None:
    database = f"silver_{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, database, SILVER_TABLES)
    for table in SILVER_TABLES:
        created = properties(spark, f"{database}.{table.name}")
        assert created["write.metadata.delete-after-commit.enabled"] == "true"
        assert created["write.metadata.previous-versions-max"] == str(METADATA_VERSIONS_KEPT)


def test_tables_created_before_the_storage_properties_get_them_on_the_next_run(spark: SparkSession) -> None:
    database = f"silver_{uuid.uuid4().hex[:8]}"
    old_style = {key: None for key in STORAGE_PROPERTIES}
    spark.sql(f"CREATE NAMESPACE lakehouse.{database}")
    for table in SILVER_TABLES:
        create = table.create_sql(f"lakehouse.{database}.{table.name}")
        for key in old_style:
            create = "\n".join(line for line in create.splitlines() if key not in line)
        spark.sql(create)
    spark.sql(
        f"ALTER TABLE {database}.orders_quarantine "
        "SET TBLPROPERTIES ('write.metadata.previous-versions-max' = '50')"
    )
    assert "write.metadata.delete-after-commit.enabled" not in properties(spark, f"{database}.orders")

    ensure_tables(spark, database, SILVER_TABLES)

    for table in SILVER_TABLES:
        now = properties(spark, f"{database}.{table.name}")
        assert now["write.metadata.delete-after-commit.enabled"] == "true"
        # A value set on purpose stays.
        expected = "50" if table.name == "orders_quarantine" else str(METADATA_VERSIONS_KEPT)
        assert now["write.metadata.previous-versions-max"] == expected


def test_a_table_with_nothing_to_maintain_costs_no_spark_job_and_no_commit(
    spark: SparkSession, orders: str
) -> None:
    policy = MaintenancePolicy(compact_at_delete_files=3, snapshot_retention=timedelta(days=7))
    maintain(spark, orders, "orders", policy)  # the first orphan sweep
    commits = count(spark, orders, "metadata_log_entries")

    with spark_jobs(spark) as jobs:
        assert maintain(spark, orders, "orders", policy) == []

    assert jobs == []
    assert count(spark, orders, "metadata_log_entries") == commits
