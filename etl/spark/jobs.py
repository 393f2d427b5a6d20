"""What the Spark job entry points share: argument parsing, the Glue-side session, table creation."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from etl.spark.maintenance import MaintenancePolicy
from etl.spark.schema_evolution import reconcile_tables
from etl.tables import TableDefinition

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def parse_job_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse the job's own `--name value` arguments; Glue adds arguments of its own (--JOB_ID, ...)."""
    arguments, _ = parser.parse_known_args(list(argv))
    return arguments


def add_maintenance_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = MaintenancePolicy()
    parser.add_argument("--compact-at-delete-files", type=int, default=defaults.compact_at_delete_files)
    parser.add_argument("--snapshot-retention-days", type=float, default=defaults.snapshot_retention.days)
    parser.add_argument("--retain-last-snapshots", type=int, default=defaults.retain_last)
    parser.add_argument(
        "--orphan-sweep-days", type=float, default=defaults.orphan_sweep_interval / timedelta(days=1)
    )


def maintenance_policy(arguments: argparse.Namespace) -> MaintenancePolicy:
    return MaintenancePolicy(
        compact_at_delete_files=arguments.compact_at_delete_files,
        snapshot_retention=timedelta(days=arguments.snapshot_retention_days),
        retain_last=arguments.retain_last_snapshots,
        orphan_sweep_interval=timedelta(days=arguments.orphan_sweep_days),
    )


def glue_session(app_name: str) -> SparkSession:
    """The session Glue configured from the job's `--conf` (catalog, extensions, time zone)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).getOrCreate()
    # Session settings that can change at run time are set here too, in case `--conf` misses them.
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def ensure_tables(
    spark: SparkSession,
    database: str,
    tables: Iterable[TableDefinition],
    property_overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the database's missing tables from their definitions and bring the existing ones to them
    (etl/spark/schema_evolution.py): new columns and type widenings are applied, any other change is refused
    before anything is written. The changes applied, one line each; each table is checked once per session.
    No branch is created here (etl/spark/branches.py): a job creates the session's branch on a table just
    before it writes to it (`create_session_branch`), so that a table it leaves alone has none to publish.
    """
    return reconcile_tables(spark, database, tables, property_overrides)
