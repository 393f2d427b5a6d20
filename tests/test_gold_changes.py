"""The change between two Silver snapshots, read as the incremental Gold job reads it: by key."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql import SparkSession

from etl.gold.changes import ChangesUnavailable, changed_rows
from etl.spark.branches import create_branch, current_snapshot, on_branch

pytestmark = pytest.mark.spark


@pytest.fixture
def table(spark: SparkSession) -> str:
    """A keyed table of five rows (id 1..5, version 1), merge-on-read unless a test says otherwise."""
    name = f"changes_{uuid.uuid4().hex[:8]}.rows"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {name.split('.')[0]}")
    spark.sql(
        f"CREATE TABLE {name} (id BIGINT, version INT, label STRING) USING iceberg "
        "TBLPROPERTIES ('format-version' = '2', 'write.merge.mode' = 'merge-on-read', "
        "'write.delete.mode' = 'merge-on-read', 'write.update.mode' = 'merge-on-read', "
        "'write.wap.enabled' = 'true')"
    )
    spark.sql(f"INSERT INTO {name} VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 1, 'c'), (4, 1, 'd'), (5, 1, 'e')")
    return name


def upsert(spark: SparkSession, table: str, rows: str) -> None:
    spark.sql(
        f"MERGE INTO {table} t USING (SELECT * FROM VALUES {rows} AS s(id, version, label)) s "
        "ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )


def images(spark: SparkSession, table: str, since: str) -> tuple[set[tuple[object, ...]], ...]:
    change = changed_rows(spark, table, ["id"], since, current_snapshot(spark, table))
    try:
        return tuple({tuple(r) for r in frame.collect()} for frame in (change.old, change.new))
    finally:
        change.unpersist()


def test_a_merge_on_read_change_is_exactly_the_updated_and_inserted_rows(
    spark: SparkSession, table: str
) -> None:
    since = current_snapshot(spark, table)
    upsert(spark, table, "(2, 2, 'B'), (6, 1, 'f')")
    upsert(spark, table, "(4, 2, 'D'), (2, 3, 'BB')")

    old, new = images(spark, table, since)

    assert old == {(2, 1, "b"), (4, 1, "d")}
    assert new == {(2, 3, "BB"), (4, 2, "D"), (6, 1, "f")}


def test_a_row_deleted_without_a_new_version_is_an_old_image(spark: SparkSession, table: str) -> None:
    since = current_snapshot(spark, table)
    spark.sql(f"DELETE FROM {table} WHERE id = 3")  # a position delete only: no data file is written
    upsert(spark, table, "(5, 2, 'E')")

    old, new = images(spark, table, since)

    assert old == {(3, 1, "c"), (5, 1, "e")}
    assert new == {(5, 2, "E")}


def test_a_rewritten_file_counts_its_unchanged_rows_as_changed(spark: SparkSession, table: str) -> None:
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('write.merge.mode' = 'copy-on-write')")
    since = current_snapshot(spark, table)
    upsert(spark, table, "(1, 2, 'A')")

    old, new = images(spark, table, since)

    # A superset: the other rows of the rewritten file come out as both versions of themselves.
    assert (1, 1, "a") in old and (1, 2, "A") in new
    assert old - {(1, 1, "a")} == new - {(1, 2, "A")}


def test_an_expired_snapshot_is_refused(spark: SparkSession, table: str) -> None:
    since = current_snapshot(spark, table)
    upsert(spark, table, "(1, 2, 'A')")
    catalog = spark.sql("SELECT current_catalog()").first()[0]  # type: ignore[index]
    spark.sql(
        f"CALL {catalog}.system.expire_snapshots(table => '{table}', "
        "older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)"
    )

    with pytest.raises(ChangesUnavailable, match="has expired"):
        changed_rows(spark, table, ["id"], since, current_snapshot(spark, table))


def test_the_change_is_read_on_a_session_that_writes_a_branch(spark: SparkSession, table: str) -> None:
    since = current_snapshot(spark, table)
    create_branch(spark, table, "run-1")
    with on_branch(spark, "run-1"):
        upsert(spark, table, "(1, 2, 'A')")
        old, new = images(spark, table, since)

    assert (old, new) == ({(1, 1, "a")}, {(1, 2, "A")})
