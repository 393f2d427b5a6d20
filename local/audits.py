"""The branches runs left unpublished (their audits failed), for `lakehouse audits`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl import registry
from etl.catalog import table_identifier
from etl.spark.branches import MAIN, branch_snapshots

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def kept_branches(spark: SparkSession, silver_database: str, gold_database: str) -> list[str]:
    """Every branch other than `main` on any Silver or Gold table, oldest first (run ids sort as they
    started)."""
    tables = [
        *(table_identifier(silver_database, t.name) for t in registry.silver_tables()),
        *(table_identifier(gold_database, t.name) for t in registry.gold_tables()),
    ]
    names = {
        name
        for identifier in tables
        if spark.catalog.tableExists(identifier)
        for name in branch_snapshots(spark, identifier)
        if name != MAIN
    }
    return sorted(names)
