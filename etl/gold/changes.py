"""The rows of a Silver table that changed between two snapshots: the Gold job's input for an incremental run.

Iceberg 1.10's changelog scan refuses tables with delete files ("Delete files are currently not supported
in changelog scans"), and Silver's MERGE writes position deletes (merge-on-read), so the change is found
from the two snapshots' file lists and read by key. Data files are immutable, so between snapshot `since`
and `until` every row that was inserted or updated is in a data file `until` has and `since` has not, and
every row a copy-on-write commit or a compaction rewrote is in a data file `since` has and `until` has not.
The keys of those files' rows are the changed keys; the old versions are `since`'s rows of those keys, the
new versions `until`'s. Both are read by a scan of the snapshot filtered on the keys: for a merge-on-read
change, the files read to find the keys are the few the MERGEs wrote, and no position delete is followed
into the data file it points at.

A row deleted outside those files (a DELETE: the Silver job never deletes) leaves only a position delete.
The snapshots' row counts show whether that happened: the rows outside the changed keys are never added
to, so `until` has as many of them as `since` unless some were deleted; then the keys `since` has and
`until` has not are added to the changed keys (a join of the two snapshots' keys: slower, still exact).

This is a superset of the changed rows, never a subset: a copy-on-write MERGE or a compaction rewrites
whole files, and their unchanged rows come out as both images of themselves. Recomputing the groups those
rows belong to gives the rows they already have, so the Gold result stays exact; only the work grows.
The change cannot be read (ChangesUnavailable: the Gold job rebuilds in full) when a snapshot has expired,
the table's schema changed in between, or equality deletes appeared (Spark never writes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from etl.spark.branches import on_branch

# Iceberg's content codes in the `files` metadata table.
DATA, POSITION_DELETES, EQUALITY_DELETES = 0, 1, 2


class ChangesUnavailable(LookupError):
    """The change between two snapshots cannot be read (a snapshot expired, or delete files this module
    does not interpret): the caller rebuilds in full."""


@dataclass(frozen=True)
class TableFiles:
    data: frozenset[str]
    position_deletes: frozenset[str]
    equality_deletes: frozenset[str]


def changed_rows(
    spark: SparkSession, identifier: str, keys: Sequence[str], since: str, until: str
) -> ChangedRows:
    """The old and new versions of every row of the table that changed from snapshot `since` to `until`,
    with the table's current columns (a superset: see the module docstring). `keys` identify a row."""
    # Snapshots are read by id, which Iceberg refuses on a session that reads a branch: whatever the
    # branch, both are read from the table's history, and kept in memory while the setting is off.
    with on_branch(spark, None):
        return _changed_rows(spark, identifier, list(keys), since, until)


def _changed_rows(
    spark: SparkSession, identifier: str, key: list[str], since: str, until: str
) -> ChangedRows:
    known = {
        str(r.snapshot_id) for r in spark.sql(f"SELECT snapshot_id FROM {identifier}.snapshots").collect()
    }
    for snapshot in (since, until):
        if snapshot not in known:
            raise ChangesUnavailable(f"snapshot {snapshot} of {identifier} has expired")
    old, new = (spark.read.option("snapshot-id", int(s)).table(identifier) for s in (since, until))
    # Files written before a column was widened hold the narrower type, which Spark 3.5's Parquet reader
    # refuses to read as the wider one.
    if old.schema != new.schema:
        raise ChangesUnavailable(f"the schema of {identifier} changed since snapshot {since}")
    before, after = table_files(spark, identifier, since), table_files(spark, identifier, until)
    if after.equality_deletes - before.equality_deletes:
        raise ChangesUnavailable(f"{identifier} has new equality deletes")
    files = sorted(after.data ^ before.data)
    changed = (
        spark.read.schema(new.schema).parquet(*files).select(*key).distinct()
        if files
        else new.select(*key).limit(0)
    )
    images = ChangedRows(old.join(changed, key, "left_semi"), new.join(changed, key, "left_semi"))
    if new.count() - images.new.count() != old.count() - images.old.count():  # rows were deleted
        images.unpersist()
        gone = old.select(*key).join(new.select(*key), key, "left_anti")
        changed = changed.unionByName(gone).distinct()
        images = ChangedRows(old.join(changed, key, "left_semi"), new.join(changed, key, "left_semi"))
    return images


class ChangedRows:
    """The old and the new versions of the changed rows, each kept in memory until `unpersist`."""

    def __init__(self, old: DataFrame, new: DataFrame) -> None:
        self.old, self.new = old.cache(), new.cache()

    @property
    def rows(self) -> DataFrame:
        """Both versions of every changed row."""
        return self.old.unionByName(self.new)

    def unpersist(self) -> None:
        self.old.unpersist()
        self.new.unpersist()


def table_files(spark: SparkSession, identifier: str, snapshot: str) -> TableFiles:
    """The data and delete files of a snapshot (its manifests, read on the driver: no data file is read)."""
    rows = spark.sql(
        f"SELECT content, file_path FROM {identifier}.files VERSION AS OF {int(snapshot)}"
    ).collect()
    by_content: dict[int, set[str]] = {DATA: set(), POSITION_DELETES: set(), EQUALITY_DELETES: set()}
    for row in rows:
        by_content[int(row.content)].add(str(row.file_path))
    return TableFiles(
        frozenset(by_content[DATA]),
        frozenset(by_content[POSITION_DELETES]),
        frozenset(by_content[EQUALITY_DELETES]),
    )
