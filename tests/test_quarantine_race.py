"""The quarantine holds each rejected record once, even when two Silver runs write it at the same time."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from pyspark.sql import DataFrame, SparkSession

from datasets.orders import DATASET as ORDERS
from etl.registry import silver_tables
from etl.silver.job import save_quarantine
from etl.spark import commit_conflicts
from etl.spark.jobs import ensure_tables

pytestmark = pytest.mark.spark


def rejected(spark: SparkSession, lines: range) -> DataFrame:
    return spark.createDataFrame(
        [
            (
                f"{{bad {line}",  # the quarantine keeps each (record, reason) once: one record per line
                "not_json",
                "orders/d/run_id=r1/page-000001.jsonl.gz",
                line,
                "r1",
                datetime(2026, 1, 1),
                None,
            )
            for line in lines
        ],
        "raw_record STRING, reason STRING, source_object STRING, line_number INT, ingestion_run_id STRING, "
        "ingested_at TIMESTAMP, quarantined_at TIMESTAMP",
    )


def quarantined_lines(spark: SparkSession, database: str) -> list[int]:
    table = f"{database}.orders_quarantine"
    spark.catalog.refreshTable(table)
    return sorted(row.line_number for row in spark.table(table).collect())


@pytest.fixture
def database(spark: SparkSession) -> str:
    name = f"silver_{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, name, silver_tables())
    return name


def test_writing_the_same_rejected_records_again_adds_nothing(spark: SparkSession, database: str) -> None:
    save_quarantine(spark, rejected(spark, range(1, 3)), database, ORDERS)
    save_quarantine(spark, rejected(spark, range(1, 4)), database, ORDERS)
    assert quarantined_lines(spark, database) == [1, 2, 3]


def test_a_writer_that_lost_the_race_runs_again_and_adds_nothing_twice(
    spark: SparkSession, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflicts: list[bool] = []
    is_conflict = commit_conflicts.is_commit_conflict

    def recording(error: BaseException) -> bool:
        conflicts.append(is_conflict(error))
        return conflicts[-1]

    monkeypatch.setattr(commit_conflicts, "is_commit_conflict", recording)
    # A second writer (its own catalog, as another Silver run has) read the table before the first
    # writer committed, and commits after it: the same records, and one more.
    racer = spark.newSession()
    assert racer.table(f"{database}.orders_quarantine").count() == 0
    save_quarantine(spark, rejected(spark, range(1, 3)), database, ORDERS)
    save_quarantine(racer, rejected(racer, range(1, 4)), database, ORDERS)

    assert conflicts == [True]  # its first commit was refused, its second found lines 1 and 2 there
    assert quarantined_lines(spark, database) == [1, 2, 3]


def test_only_iceberg_commit_conflicts_are_retried() -> None:
    class JavaError(Exception):
        def __init__(self, text: str) -> None:
            self.java_exception = type("J", (), {"toString": lambda _: text})()

    assert commit_conflicts.is_commit_conflict(
        JavaError("org.apache.iceberg.exceptions.ValidationException: Found conflicting files")
    )
    assert not commit_conflicts.is_commit_conflict(JavaError("java.io.IOException: disk full"))
    assert not commit_conflicts.is_commit_conflict(ValueError("x"))
