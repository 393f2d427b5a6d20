"""Retry an Iceberg write that lost a race: another writer committed first, in a way that conflicts.

Iceberg validates a row-level write (MERGE, UPDATE, DELETE) against the commits made since it read the
table and refuses it with a ValidationException; running it again re-reads the table, so a write that
inserts only what is absent inserts nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import SparkSession

T = TypeVar("T")

CONFLICT_ATTEMPTS = 3
_CONFLICTS = (
    "org.apache.iceberg.exceptions.ValidationException",
    "org.apache.iceberg.exceptions.CommitFailedException",
)


def retry_on_conflict(spark: SparkSession, table: str, write: Callable[[], T]) -> T:
    """Run `write`; when another writer's commit conflicts with it, reload `table` and run it again."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return write()
        except Exception as error:
            if attempt == CONFLICT_ATTEMPTS or not is_commit_conflict(error):
                raise
            spark.catalog.refreshTable(table)
    raise AssertionError("unreachable")  # pragma: no cover


def is_commit_conflict(error: BaseException) -> bool:
    java = getattr(error, "java_exception", None)  # a Py4JJavaError carries the JVM exception
    text = str(java.toString()) if java is not None else str(error)
    return text.startswith(_CONFLICTS)
