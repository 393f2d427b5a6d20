"""The Silver MERGE's inserted and updated counts, read from its commit, against counts computed apart."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession

from datasets.orders import DATASET as ORDERS
from etl.registry import silver_tables
from etl.silver.job import save_latest
from etl.silver.merge_commit import MergeCounts, merge_and_count
from etl.spark.jobs import ensure_tables

pytestmark = pytest.mark.spark

START = datetime(2026, 1, 1, tzinfo=UTC)


def database_with(spark: SparkSession, write_mode: str) -> str:
    name = f"silver_{uuid.uuid4().hex[:8]}"
    modes = {f"write.{op}.mode": write_mode for op in ("merge", "update", "delete")}
    ensure_tables(spark, name, silver_tables(), modes)
    return name


def batch(spark: SparkSession, database: str, versions: dict[int, int], run: str) -> DataFrame:
    """Latest versions of orders, one per key as latest_versions hands them to the MERGE: key -> hour."""
    columns: dict[str, Callable[[int, int], object]] = {
        "customer_id": lambda key, hour: f"C{key}",
        "status": lambda key, hour: "placed",
        "amount": lambda key, hour: Decimal(f"{hour}.00"),
        "currency": lambda key, hour: "EUR",
        "created_at": lambda key, hour: START,
        "updated_at": lambda key, hour: START + timedelta(hours=hour),
        "ingestion_run_id": lambda key, hour: run,
        "ingested_at": lambda key, hour: START,
        "source_object": lambda key, hour: f"orders/run_id={run}/page-000001.jsonl.gz",
    }
    schema = spark.table(f"{database}.orders").schema
    rows = [
        tuple(
            key if f.name == "order_id" else columns[f.name](key, hour) if f.name in columns else None
            for f in schema
        )
        for key, hour in versions.items()
    ]
    return spark.createDataFrame(rows, schema)


def expected_counts(stored: dict[int, int], versions: dict[int, int]) -> MergeCounts:
    """The independent computation: a key not stored is inserted, a strictly newer version updates."""
    inserted = sum(1 for key in versions if key not in stored)
    updated = sum(1 for key, hour in versions.items() if key in stored and hour > stored[key])
    return MergeCounts(inserted, updated)


def stored_versions(spark: SparkSession, database: str) -> dict[int, int]:
    table = f"{database}.orders"
    spark.catalog.refreshTable(table)
    return {
        row.order_id: int((row.updated_at.replace(tzinfo=UTC) - START).total_seconds() // 3600)
        for row in spark.table(table).collect()
    }


def rounds(seed: int) -> list[dict[int, int]]:
    """Batches of new keys, newer versions, older and equal versions (no-ops), the same keys again."""
    chosen = random.Random(seed)
    batches = [{key: 10 for key in range(1, 41)}]
    for _ in range(3):
        keys = chosen.sample(range(1, 61), 30)  # keys 41 to 60 are new the first time they come
        batches.append({key: chosen.choice((5, 10, 11, 12, 13)) for key in keys})
    return batches


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_the_counts_of_each_merge_equal_the_rows_it_inserted_and_updated(
    spark: SparkSession, write_mode: str
) -> None:
    database = database_with(spark, write_mode)
    for number, versions in enumerate(rounds(seed=3)):
        stored = stored_versions(spark, database)
        expected = expected_counts(stored, versions)
        assert number == 0 or expected.updated, "each later round updates some rows"

        counts = save_latest(spark, batch(spark, database, versions, f"r{number}"), database, ORDERS)

        if write_mode == "merge-on-read":
            assert counts == expected
        else:  # a copy-on-write commit records inserted rows exactly, not which rewritten rows changed
            assert counts == MergeCounts(expected.inserted, None)
        after = stored_versions(spark, database)
        assert after == {**stored, **{k: h for k, h in versions.items() if h > stored.get(k, -1)}}


def test_a_merge_that_changes_nothing_counts_nothing(spark: SparkSession) -> None:
    database = database_with(spark, "merge-on-read")
    save_latest(spark, batch(spark, database, {1: 10, 2: 10}, "r1"), database, ORDERS)

    counts = save_latest(spark, batch(spark, database, {1: 10, 2: 9}, "r2"), database, ORDERS)

    assert counts == MergeCounts(0, 0)


def test_a_commit_of_another_writer_during_the_merge_is_not_counted(spark: SparkSession) -> None:
    database = database_with(spark, "merge-on-read")
    table = f"{database}.orders"
    save_latest(spark, batch(spark, database, {1: 10, 2: 10}, "r1"), database, ORDERS)
    batch(spark, database, {1: 11, 3: 10}, "r2").createOrReplaceTempView("changes")

    def other_writer_around_the_merge() -> None:
        # Another application commits appends just before and just after the MERGE: the first is the
        # MERGE's parent, the second the table's newest snapshot; neither is the MERGE's.
        other_append({7: 10, 8: 10})
        spark.sql(
            f"""MERGE INTO {table} AS t USING changes AS s ON t.order_id = s.order_id
            WHEN MATCHED AND s.updated_at > t.updated_at THEN UPDATE SET *
            WHEN NOT MATCHED THEN INSERT *"""
        )
        other_append({9: 10})

    def other_append(versions: dict[int, int]) -> None:
        other = batch(spark, database, versions, "other")
        other.writeTo(table).option("snapshot-property.spark.app.id", "another-application").append()

    counts = merge_and_count(spark, table, other_writer_around_the_merge)

    assert counts == MergeCounts(1, 1)
    assert sorted(stored_versions(spark, database)) == [1, 2, 3, 7, 8, 9]
