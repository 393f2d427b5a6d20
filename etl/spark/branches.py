"""Iceberg branches for write-audit-publish: a run writes to a branch named after it, `main` moves later.

With the session setting `spark.wap.branch` and the table property `write.wap.enabled` (every table has it,
etl/tables.py), Iceberg sends every write of the session to that branch and reads the branch where the
table has it, else `main`. So the jobs' reads and writes stay as they are: `on_branch` sets the branch
around a job, a job creates it from `main` (create_branch) on a table just before its first write to it
(`create_session_branch`), so that a table the run does not write has no branch to publish, and the few
places that look at a table's current snapshot ask `current_snapshot`, which answers for the session's
branch. Publishing fast-forwards `main`
to the branch (`main` must still be its ancestor: nothing else may commit to `main` meanwhile, not even
maintenance) and drops the branch, in one commit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from etl.catalog import table_identifier
from etl.spark.commit_conflicts import retry_on_conflict

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

WAP_BRANCH = "spark.wap.branch"
MAIN = "main"
# Branch names go into SQL string literals and job arguments: letters, digits and . _ : - only.
BRANCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


class BadBranchName(ValueError):
    """A branch name that is not a plain run id."""


def require_branch_name(name: str) -> str:
    if BRANCH_NAME.fullmatch(name) is None or name == MAIN:
        raise BadBranchName(
            f"branch {name!r} must be a run id (letters, digits, '.', '_', ':', '-') and not {MAIN!r}"
        )
    return name


@contextmanager
def on_branch(spark: SparkSession, branch: str | None) -> Iterator[None]:
    """Within the block the session reads and writes `branch` (None: `main`); the setting before is
    restored afterwards (locally every step shares one session)."""
    before = spark.conf.get(WAP_BRANCH, None)
    _set(spark, branch)
    try:
        yield
    except BaseException:
        # A session whose JVM died cannot be reset: the error that stopped the block says why.
        with suppress(Exception):
            _set(spark, before)
        raise
    _set(spark, before)


def _set(spark: SparkSession, branch: str | None) -> None:
    if branch is None:
        spark.conf.unset(WAP_BRANCH)
    else:
        spark.conf.set(WAP_BRANCH, require_branch_name(branch))


class _OnBranch(Protocol):
    @property
    def branch(self) -> str | None: ...


A = TypeVar("A", bound=_OnBranch)
R = TypeVar("R")


def writes_on_branch(run: Callable[[SparkSession, A], R]) -> Callable[[SparkSession, A], R]:
    """Run a job's `run(spark, args)` on `args.branch`: its reads and writes go there."""

    @functools.wraps(run)
    def on_its_branch(spark: SparkSession, args: A) -> R:
        with on_branch(spark, args.branch):
            return run(spark, args)

    return on_its_branch


def session_branch(spark: SparkSession) -> str | None:
    """The branch the session writes to, None for `main`."""
    value = spark.conf.get(WAP_BRANCH, None)
    return value or None


def branch_snapshots(spark: SparkSession, identifier: str) -> dict[str, int]:
    """The head snapshot of each of the table's branches (`main` only once it has a snapshot).

    Read from the table's metadata on the driver: the `.refs` metadata table would cost a Spark job, and
    a run asks this of every table several times."""
    return heads(iceberg_table(spark, identifier))


def heads(table: Any) -> dict[str, int]:
    """The head snapshot of each branch of a table loaded with `iceberg_table`."""
    return {str(name): int(ref.snapshotId()) for name, ref in table.refs().items() if ref.isBranch()}


def iceberg_table(spark: SparkSession, identifier: str) -> Any:
    """The table as Iceberg's Java API sees it, reloaded: the catalog may hand out a cached copy."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, identifier)
    table.refresh()
    return table


def current_snapshot(spark: SparkSession, identifier: str) -> str:
    """The snapshot the session reads (of its branch where the table has it, else of `main`), as a
    string; "none" for a table without one."""
    snapshot = session_snapshot(spark, identifier)
    return str(snapshot.snapshotId()) if snapshot is not None else "none"


def session_snapshot(spark: SparkSession, identifier: str) -> Any | None:
    """The snapshot the session reads (see current_snapshot) as Iceberg's Java API sees it, None for a
    table without one: its summary answers what a `.snapshots` query would, without a Spark job."""
    table = iceberg_table(spark, identifier)
    branch = session_branch(spark)
    refs = heads(table)
    head = refs.get(branch, refs.get(MAIN)) if branch is not None else refs.get(MAIN)
    return table.snapshot(head) if head is not None else None


def snapshot_summary(snapshot: Any) -> dict[str, str]:
    """A Java snapshot's summary properties."""
    return {str(key): str(value) for key, value in snapshot.summary().items()}


def create_branch(spark: SparkSession, identifier: str, branch: str) -> None:
    """Start `branch` at `main`'s head (an empty snapshot when `main` has none). Created by the first
    write instead, the branch's first snapshot would count its rows from zero (Iceberg 1.10 sums the
    `total-records` of that commit as if the branch had been empty).

    Jobs of one run create the same branch on a table they share (each dataset's Silver job on the
    ledger, at the same time in AWS): the loser of that race retries, and finds the branch there."""
    create = f"ALTER TABLE {identifier} CREATE BRANCH IF NOT EXISTS `{require_branch_name(branch)}`"
    retry_on_conflict(spark, identifier, lambda: spark.sql(create))


def create_session_branch(spark: SparkSession, identifier: str) -> None:
    """Before a job's first write to a table: create the session's branch on it (nothing on `main`).
    Until then the session reads the table's `main`, where the branch would start."""
    branch = session_branch(spark)
    if branch is not None:
        create_branch(spark, identifier, branch)


def publish(spark: SparkSession, database: str, table: str, branch: str) -> bool:
    """Move the table's `main` to the head of `branch` and drop the branch; False when the table has no
    such branch (the run wrote nothing to it, or it was published already)."""
    return publish_loaded(iceberg_table(spark, table_identifier(database, table)), branch)


def publish_loaded(loaded: Any, branch: str) -> bool:
    """`publish` for a table loaded with `iceberg_table`."""
    refs = heads(loaded)
    if branch not in refs:
        return False
    update = loaded.manageSnapshots()
    if refs.get(MAIN) != refs[branch]:
        # Iceberg checks that `main` is an ancestor of the branch, as the `fast_forward` procedure does.
        update = update.fastForwardBranch(MAIN, require_branch_name(branch))
    # Both changes in one commit (one catalog update instead of two): `main` moves and the branch goes
    # together or not at all, and a retry finds either the branch or nothing to do.
    update.removeBranch(branch).commit()
    return True
