"""The rows of a Silver table that changed between two snapshots: the Gold job's input for an incremental run.

Iceberg 1.10's changelog scan refuses tables with delete files ("Delete files are currently not supported
in changelog scans"), and Silver's MERGE writes position deletes (merge-on-read), so the change is read from
the two snapshots' file lists instead. Data files are immutable, so between snapshot `since` and `until`:

- every row of a data file `until` has and `since` has not is a new row version (post-image);
- every row of a data file `since` has and `until` has not, and every row a position delete file added
  since then points at in a file `since` has, is an old row version (pre-image).

This is a superset of the changed rows, never a subset: a copy-on-write MERGE or a compaction rewrites
whole files, and their unchanged rows come out as both images of themselves. Recomputing the groups those
rows belong to gives the rows they already have, so the Gold result stays exact; only the work grows.
The change cannot be read (ChangesUnavailable: the Gold job rebuilds in full) when a snapshot has expired,
the table's schema changed in between, or equality deletes appeared (Spark never writes them).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

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


def changed_rows(spark: SparkSession, identifier: str, since: str, until: str) -> DataFrame:
    """The old and new versions of every row of the table that changed from snapshot `since` to `until`,
    with the table's current columns (a superset: see the module docstring)."""
    known = {
        str(r.snapshot_id) for r in spark.sql(f"SELECT snapshot_id FROM {identifier}.snapshots").collect()
    }
    for snapshot in (since, until):
        if snapshot not in known:
            raise ChangesUnavailable(f"snapshot {snapshot} of {identifier} has expired")
    schema = spark.table(identifier).schema
    # Files written before a column was widened hold the narrower type, which Spark 3.5's Parquet reader
    # refuses to read as the wider one.
    if spark.read.option("snapshot-id", int(since)).table(identifier).schema != schema:
        raise ChangesUnavailable(f"the schema of {identifier} changed since snapshot {since}")
    before, after = table_files(spark, identifier, since), table_files(spark, identifier, until)
    if after.equality_deletes - before.equality_deletes:
        raise ChangesUnavailable(f"{identifier} has new equality deletes")
    images = [
        _rows_in_files(spark, sorted(after.data - before.data), schema),
        _rows_in_files(spark, sorted(before.data - after.data), schema),
    ]
    new_deletes = sorted(after.position_deletes - before.position_deletes)
    if new_deletes:
        images.append(_deleted_rows(spark, new_deletes, before, schema))
    changed = images[0]
    for more in images[1:]:
        changed = changed.unionByName(more)
    return changed


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


def _file_name(path: Column) -> Column:
    """A data file's name: unique in its table (Iceberg names files by UUID), and the same whatever scheme or
    form of the path (`file:/...`, `/...`) Spark and Iceberg each report."""
    return F.regexp_extract(path, r"[^/]*$", 0)


def _rows_in_files(spark: SparkSession, files: list[str], schema: StructType) -> DataFrame:
    """Every row the given data files hold, read directly (an Iceberg scan would read every file: it does
    not prune on `_file`), with the table's current columns (those a file predates read as null)."""
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*files)


def _deleted_rows(
    spark: SparkSession, delete_files: list[str], before: TableFiles, schema: StructType
) -> DataFrame:
    """The rows of the snapshot's data files (`before`) that the given position delete files delete."""
    positions = spark.read.parquet(*delete_files).select(
        _file_name(F.col("file_path")).alias("_file"), F.col("pos").alias("_pos")
    )
    names = {str(r._file) for r in positions.select("_file").distinct().collect()}
    targets = sorted(path for path in before.data if path.rsplit("/", 1)[-1] in names)
    if not targets:
        return spark.createDataFrame([], schema)
    rows = (
        spark.read.schema(schema)
        .parquet(*targets)
        .select(
            "*",
            _file_name(F.col("_metadata.file_path")).alias("_file"),
            F.col("_metadata.row_index").alias("_pos"),
        )
    )
    return rows.join(positions, ["_file", "_pos"], "left_semi").select(*schema.fieldNames())
