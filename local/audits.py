"""The branches runs left unpublished (their audits failed), for `lakehouse audits`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl import registry
from etl.catalog import table_identifier
from etl.spark.branches import MAIN, branch_snapshots, heads, iceberg_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def kept_branches(spark: SparkSession, silver_database: str, gold_database: str) -> list[str]:
    """Every branch other than `main` on any Silver or Gold table, oldest first (run ids sort as they
    started)."""
    names = {
        name
        for identifier in _existing_tables(spark, silver_database, gold_database)
        for name in branch_snapshots(spark, identifier)
        if name != MAIN
    }
    return sorted(names)


def moved_on(spark: SparkSession, silver_database: str, gold_database: str, branch: str) -> list[str]:
    """The tables whose `main` moved on since `branch` was made from it (a later run published): their
    audits cannot be measured against `main` any more, and publishing the branch would fail."""
    snapshots = spark.sparkContext._jvm.org.apache.iceberg.util.SnapshotUtil  # type: ignore[union-attr]
    moved = []
    for identifier in _existing_tables(spark, silver_database, gold_database):
        table = iceberg_table(spark, identifier)
        head = heads(table)
        if branch in head and MAIN in head and not snapshots.isAncestorOf(table, head[branch], head[MAIN]):
            moved.append(identifier)
    return moved


def _existing_tables(spark: SparkSession, silver_database: str, gold_database: str) -> list[str]:
    """Every declared Silver and Gold table that exists."""
    tables = [
        *(table_identifier(silver_database, t.name) for t in registry.silver_tables()),
        *(table_identifier(gold_database, t.name) for t in registry.gold_tables()),
    ]
    return [identifier for identifier in tables if spark.catalog.tableExists(identifier)]
