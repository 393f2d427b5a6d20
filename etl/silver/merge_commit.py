"""What a Silver MERGE changed, read from the summary Iceberg records for its commit.

The MERGE takes the de-duplicated batch as it is (no join with the stored keys beforehand), so the
counts come from the commit itself. Iceberg 1.10 records in a snapshot's summary, for a format 2 table:

- merge-on-read: an updated row is a position delete of the stored row plus a new row, an inserted row
  a new row. `added-records` counts both; the position deletes added minus those removed (the delete
  files of a data file are rewritten into one) count the updates. Both counts are exact.
- copy-on-write: each data file holding a matched row is rewritten whole, with its other rows copied,
  even when the update condition leaves the matched row as it is. `added-records` minus
  `deleted-records` is exact for the inserted rows; which rewritten rows were updated is not recorded,
  so the updated count is unknown (None).

A MERGE that changes nothing commits an empty snapshot, or none: both count zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pyspark.sql import SparkSession

from etl.dataset import WriteMode
from etl.spark.branches import iceberg_table, session_branch

# The summary key Iceberg's Spark writer stamps on every commit with the application that made it.
APP_ID = "spark.app.id"
MERGE_MODE = "write.merge.mode"


class MergeCounts(NamedTuple):
    inserted: int
    updated: int | None  # None: the write mode's commits do not record it (copy-on-write)


class UnattributableCommit(RuntimeError):
    """More than one commit of this application landed on the table during the MERGE."""


def merge_counts(summary: Mapping[str, str] | None, write_mode: WriteMode) -> MergeCounts:
    """Inserted and updated rows of a MERGE, from its snapshot's summary (None: it committed nothing)."""
    if summary is None:
        return MergeCounts(0, 0)
    added = _count(summary, "added-records")
    if write_mode is WriteMode.COPY_ON_WRITE:
        return MergeCounts(added - _count(summary, "deleted-records"), None)
    updated = _count(summary, "added-position-deletes") - _count(summary, "removed-position-deletes")
    return MergeCounts(added - updated, updated)


def merge_and_count(spark: SparkSession, table: str, merge: Callable[[], object]) -> MergeCounts:
    """Run the MERGE `merge` into `table`; the rows its commit inserted and updated.

    The MERGE's snapshot is found among those committed since the table's snapshot before it (another
    writer may commit in between, and Iceberg then applies the MERGE on top of that commit): it is the
    one this Spark application made. The write mode is the table's own (its properties may differ from
    the dataset's declaration). Call it again for each attempt of a retried MERGE.
    """
    branch = session_branch(spark)  # the MERGE commits to the run's branch, when there is one
    before = _head(iceberg_table(spark, table), branch)
    before_id = None if before is None else before.snapshotId()
    merge()
    iceberg = iceberg_table(spark, table)
    app_id = spark.sparkContext.applicationId
    ours = [
        snapshot
        for snapshot in _snapshots_since(iceberg, _head(iceberg, branch), before_id)
        if str(snapshot.summary().get(APP_ID)) == app_id
    ]
    if len(ours) > 1:
        raise UnattributableCommit(
            f"{len(ours)} commits of this Spark application landed on {table} during one MERGE: run one "
            "Silver job per dataset at a time in a Spark application"
        )
    summary = {str(k): str(v) for k, v in ours[0].summary().items()} if ours else None
    # Iceberg's own default, for a table created without the property, is copy-on-write.
    mode = str(iceberg.properties().getOrDefault(MERGE_MODE, WriteMode.COPY_ON_WRITE.value))
    return merge_counts(summary, WriteMode(mode))


def _head(iceberg: Any, branch: str | None) -> Any:
    """The head snapshot of `branch` (None: `main`), or None while it has none."""
    return iceberg.currentSnapshot() if branch is None else iceberg.snapshot(branch)


def _snapshots_since(iceberg: Any, head: Any, before_id: int | None) -> list[Any]:
    """`head` and its ancestors, newest first, down to (not including) `before_id`."""
    snapshots = []
    snapshot = head
    while snapshot is not None and snapshot.snapshotId() != before_id:
        snapshots.append(snapshot)
        parent = snapshot.parentId()
        snapshot = None if parent is None else iceberg.snapshot(parent)
    return snapshots


def _count(summary: Mapping[str, str], key: str) -> int:
    return int(summary.get(key, "0"))
