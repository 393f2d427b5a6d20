"""The branches runs left unpublished (their audits failed): which are kept, which are out of date, and
dropping one. Locally for `lakehouse audits`, in AWS for the Audit job's `--drop-branch`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl import registry
from etl.catalog import CATALOG, table_identifier
from etl.spark.branches import MAIN, branch_snapshots, heads, iceberg_table, require_branch_name

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


class BranchWaiting(ValueError):
    """The branch to drop still waits to be published: dropping it needs asking for explicitly."""


class NoSuchBranch(ValueError):
    """No Silver or Gold table has the branch."""


def drop_branch(
    spark: SparkSession,
    silver_database: str,
    gold_database: str,
    branch: str,
    even_if_waiting: bool = False,
    *,
    inspect: str,
    force: str,
) -> list[str]:
    """Drop `branch` from every Silver and Gold table that has it; the tables it was dropped from.

    An out-of-date branch (`moved_on`) holds nothing `main` still lacks. A branch still waiting is refused
    unless `even_if_waiting`: it is what the audits measure and publishing anyway would publish (its Bronze
    runs stay, and the next run merges them again). The refusal names, in the words of where it runs,
    what shows why the branch was held back (`inspect`) and the option that drops it anyway (`force`)."""
    require_branch_name(branch)
    kept = kept_branches(spark, silver_database, gold_database)
    if branch not in kept:
        raise NoSuchBranch(f"no table has a branch {branch!r}; kept branches: {', '.join(kept) or 'none'}")
    if not even_if_waiting and not moved_on(spark, silver_database, gold_database, branch):
        raise BranchWaiting(
            f"branch {branch} is still waiting to be published (main has not moved on since its run): "
            f"{inspect} shows why it was held back. Dropping it loses no record (its Bronze runs stay, and "
            f"the next run merges them again): to drop it anyway, add {force}"
        )
    dropped = []
    for identifier in _existing_tables(spark, silver_database, gold_database):
        if branch in branch_snapshots(spark, identifier):
            spark.sql(f"ALTER TABLE {identifier} DROP BRANCH IF EXISTS `{branch}`")
            dropped.append(identifier)
    return dropped


def dropped_line(branch: str, dropped: list[str]) -> str:
    """What `drop_branch` did, in one line naming the tables (database.table)."""
    plural = "" if len(dropped) == 1 else "s"
    return f"Dropped branch {branch} from {len(dropped)} table{plural}: {table_names(dropped)}"


def table_names(identifiers: list[str]) -> str:
    """Tables as the user names them (database.table, without the catalog), comma-separated."""
    return ", ".join(identifier.removeprefix(f"{CATALOG}.") for identifier in identifiers)


def _existing_tables(spark: SparkSession, silver_database: str, gold_database: str) -> list[str]:
    """Every declared Silver and Gold table that exists."""
    tables = [
        *(table_identifier(silver_database, t.name) for t in registry.silver_tables()),
        *(table_identifier(gold_database, t.name) for t in registry.gold_tables()),
    ]
    return [identifier for identifier in tables if spark.catalog.tableExists(identifier)]
