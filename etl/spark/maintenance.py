"""Iceberg table maintenance, run by the jobs after they write.

Merge-on-read MERGEs leave position-delete files that every read applies until the data files they point
at are rewritten; and every commit keeps the files of the snapshots before it (Gold rewrites its tables on
every run). Without maintenance reads slow down and storage grows with each run, so:
- a table with `compact_at_delete_files` or more delete files gets those data files rewritten;
- snapshots older than `snapshot_retention` are expired, keeping at least the last `retain_last`, which
  also deletes the files only they used (time travel reaches back as far as the retention);
- files under the table's location that no snapshot and no metadata file references (left by a writer
  that died before its commit, or by a commit that lost a race) are deleted once they are older than the
  snapshot retention, and never younger than a day: a younger file may belong to a commit in progress.
  This lists the whole table location, so it runs at most once per `orphan_sweep_interval` per table (the
  time of the last sweep is a table property, set to the creation time when the job creates the table).
Each table also keeps at most `etl.tables.METADATA_VERSIONS_KEPT` old metadata files (table properties).
Whether a step is due is read from the table's metadata on the driver (snapshot summaries, snapshot times,
properties): a run that has nothing to maintain costs no Spark job and no commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from etl.catalog import CATALOG, table_identifier
from etl.spark.branches import iceberg_table
from etl.timestamps import format_rfc3339, parse_rfc3339, utc_now

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class MaintenancePolicy:
    compact_at_delete_files: int = 50
    snapshot_retention: timedelta = timedelta(days=7)
    retain_last: int = 10
    orphan_sweep_interval: timedelta = timedelta(days=1)


# Iceberg's procedure refuses a younger cut-off: a file that young may belong to a commit in progress.
ORPHAN_MIN_AGE = timedelta(days=1)
# Table property: when orphan files were last removed (RFC 3339, UTC).
ORPHANS_REMOVED_AT = "lakehouse.orphan-files-removed-at"


def maintain(
    spark: SparkSession,
    database: str,
    table: str,
    policy: MaintenancePolicy,
    compact: bool = True,
    now: datetime | None = None,
) -> list[str]:
    """Compact (when asked and needed), expire old snapshots and remove orphan files; what was done, for
    the run summary."""
    done = []
    now = now or utc_now()
    if compact:
        removed = compact_delete_files(spark, database, table, policy.compact_at_delete_files)
        if removed:
            done.append(f"compacted {database}.{table} ({removed} delete files)")
    expired = expire_snapshots(spark, database, table, policy, now)
    if expired:
        done.append(f"expired {expired} snapshots of {database}.{table}")
    if orphan_sweep_due(spark, database, table, policy.orphan_sweep_interval, now):
        # Never younger than a day by the real clock either (`now` may be given, in tests).
        older_than = min(now - max(policy.snapshot_retention, ORPHAN_MIN_AGE), utc_now() - ORPHAN_MIN_AGE)
        orphans = remove_orphan_files(spark, database, table, older_than)
        spark.sql(
            f"ALTER TABLE {table_identifier(database, table)} "
            f"SET TBLPROPERTIES ('{ORPHANS_REMOVED_AT}' = '{format_rfc3339(now)}')"
        )
        if orphans:
            done.append(f"removed {orphans} orphan files of {database}.{table}")
    return done


def swept_at_creation() -> dict[str, str]:
    """The properties of a table about to be created: its first orphan sweep is due one interval later.
    No file of a table that new is old enough to be removed (ORPHAN_MIN_AGE), so sweeping it on its first
    run would list its location for nothing (every table of a first run, about 0.3 s each)."""
    return {ORPHANS_REMOVED_AT: format_rfc3339(utc_now())}


def orphan_sweep_due(
    spark: SparkSession, database: str, table: str, interval: timedelta, now: datetime
) -> bool:
    """True when the table's orphan files were removed (or, for a table created with `swept_at_creation`,
    the table created) longer than `interval` ago, or never."""
    last = iceberg_table(spark, table_identifier(database, table)).properties().get(ORPHANS_REMOVED_AT)
    swept = parse_rfc3339(str(last)) if last is not None else None
    return swept is None or swept <= now - interval


def compact_delete_files(spark: SparkSession, database: str, table: str, threshold: int) -> int:
    """Rewrite the data files that have delete files, when the table has `threshold` or more; the number
    of delete files gone afterwards."""
    identifier = table_identifier(database, table)
    before = delete_file_count(spark, identifier)
    if before < threshold:
        return 0
    procedures, name = f"{CATALOG}.system", f"{database}.{table}"
    spark.sql(
        f"CALL {procedures}.rewrite_data_files(table => '{name}', "
        "options => map('delete-file-threshold', '1', 'remove-dangling-deletes', 'true'))"
    )
    # The newest delete files can outlive the rewrite (same sequence number as the rewritten data):
    # rewriting the position deletes drops those that no longer point at a live data file.
    rewrite_all = "map('rewrite-all', 'true')"
    spark.sql(f"CALL {procedures}.rewrite_position_delete_files(table => '{name}', options => {rewrite_all})")
    return before - delete_file_count(spark, identifier)


def delete_file_count(spark: SparkSession, identifier: str) -> int:
    """The delete files of the table's current snapshot: its summary's total, else counted (a Spark job)
    when the summary has none."""
    current = iceberg_table(spark, identifier).currentSnapshot()
    if current is None:
        return 0
    total = current.summary().get("total-delete-files")
    if total is not None:
        return int(total)
    return spark.sql(f"SELECT * FROM {identifier}.delete_files").count()


def expire_snapshots(
    spark: SparkSession, database: str, table: str, policy: MaintenancePolicy, now: datetime
) -> int:
    """Expire the snapshots the policy no longer keeps; the number expired."""
    identifier = table_identifier(database, table)
    older_than = now - policy.snapshot_retention
    cutoff = older_than.strftime("%Y-%m-%d %H:%M:%S.%f")  # UTC, the sessions' time zone
    # Ask the metadata first (on the driver): the procedure costs a commit even when it has nothing to do.
    committed = snapshot_times(spark, identifier)
    aware = older_than if older_than.tzinfo is not None else older_than.replace(tzinfo=UTC)
    old = sum(1 for at in committed if at < aware)
    if min(old, len(committed) - policy.retain_last) <= 0:
        return 0
    spark.sql(
        f"CALL {CATALOG}.system.expire_snapshots(table => '{database}.{table}', "
        f"older_than => TIMESTAMP '{cutoff}', retain_last => {policy.retain_last})"
    )
    return len(committed) - len(snapshot_times(spark, identifier))


def snapshot_times(spark: SparkSession, identifier: str) -> list[datetime]:
    """When each of the table's snapshots was committed (UTC), from its metadata."""
    snapshots = iceberg_table(spark, identifier).snapshots()
    return [EPOCH + timedelta(milliseconds=s.timestampMillis()) for s in snapshots]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def remove_orphan_files(spark: SparkSession, database: str, table: str, older_than: datetime) -> int:
    """Delete the files under the table's location that its metadata does not reference and that are older
    than `older_than`; the number deleted."""
    cutoff = older_than.strftime("%Y-%m-%d %H:%M:%S.%f")
    removed = spark.sql(
        f"CALL {CATALOG}.system.remove_orphan_files(table => '{database}.{table}', "
        f"older_than => TIMESTAMP '{cutoff}')"
    )
    return removed.count()
