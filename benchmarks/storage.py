"""Bytes on disk per table after N pipeline runs: what the warehouse keeps once maintenance has run.

Each run ingests the next batch of the sample API (in its own process), then runs the Silver and Gold
jobs with the given snapshot retention; at the end it prints, per table, the bytes and files of its data
and of its metadata, its snapshots and its metadata files. `make bench` runs it with the default
retention (every run falls within it: nothing expires yet); `--snapshot-retention-days 0` shows what a
table holds once its snapshots are older than the retention (only the last `--retain-last` are kept).
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.sample_process import sample_api_process
from etl import pipeline
from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.gold import job as gold
from etl.registry import all_tables
from etl.silver import job as silver
from etl.spark.maintenance import MaintenancePolicy
from etl.tables import Layer
from etl.timestamps import utc_now
from local.report import text_table
from local.runner import LocalLayout
from local.sample_api.generator import SampleSource


@dataclass(frozen=True)
class TableStorage:
    table: str
    data_bytes: int
    data_files: int
    metadata_bytes: int
    metadata_files: int
    metadata_json_files: int
    snapshots: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--snapshot-retention-days", type=float, default=None)
    parser.add_argument("--retain-last", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-storage"))
    args = parser.parse_args()

    from local.session import build_session

    shutil.rmtree(args.work_dir, ignore_errors=True)
    layout = LocalLayout(args.work_dir)
    spark = build_session(str(layout.warehouse), app_name="lakehouse-bench-storage")
    spark.sparkContext.setLogLevel("ERROR")
    policy = _policy(args.snapshot_retention_days, args.retain_last)
    measured = storage_after_runs(
        spark,
        layout,
        SampleSource(initial_orders=args.orders, change_fraction=args.change),
        args.runs,
        policy,
    )
    print_storage(measured, args.runs, policy)


def storage_after_runs(
    spark: Any, layout: LocalLayout, source: SampleSource, runs: int, policy: MaintenancePolicy
) -> list[TableStorage]:
    """Run ingestion, Silver and Gold `runs` times, one more sample batch each, and measure the tables."""
    maintenance = [
        "--snapshot-retention-days",
        str(policy.snapshot_retention / timedelta(days=1)),
        "--retain-last-snapshots",
        str(policy.retain_last),
    ]
    silver_argv = [
        pipeline.BRONZE_ROOT, str(layout.bronze),
        pipeline.SILVER_DATABASE, layout.silver_database,
        pipeline.DATASET, "orders",
        pipeline.CHECKPOINT_ROOT, str(layout.checkpoints),
        *maintenance,
    ]  # fmt: skip
    gold_argv = [
        pipeline.SILVER_DATABASE, layout.silver_database,
        pipeline.GOLD_DATABASE, layout.gold_database,
        *maintenance,
    ]  # fmt: skip
    for run in range(1, runs + 1):
        print(f"storage: run {run} of {runs} ...", flush=True)
        with sample_api_process(replace(source, batches=run)) as url:
            ingest(
                IngestionSettings(SourceSettings(url, page_size=1000), str(layout.bronze), "orders"),
                f"storage-{run:03d}",
                utc_now(),
            )
        silver.run(spark, silver.parse_args(silver_argv))
        gold.run(spark, gold.parse_args(gold_argv))
    databases = {Layer.SILVER: layout.silver_database, Layer.GOLD: layout.gold_database}
    return [table_storage(spark, databases[table.layer], table.name) for table in all_tables()]


def table_storage(spark: Any, database: str, table: str) -> TableStorage:
    """What the table's directory holds on disk (checksum files of the local file system excluded)."""
    identifier = f"{database}.{table}"
    row = spark.sql(f"DESCRIBE TABLE EXTENDED {identifier}").where("col_name = 'Location'").first()
    location = Path(row["data_type"].removeprefix("file:"))
    data = _files(location / "data")
    metadata = _files(location / "metadata")
    return TableStorage(
        table=identifier,
        data_bytes=sum(path.stat().st_size for path in data),
        data_files=len(data),
        metadata_bytes=sum(path.stat().st_size for path in metadata),
        metadata_files=len(metadata),
        metadata_json_files=sum(1 for path in metadata if path.name.endswith(".metadata.json")),
        snapshots=spark.sql(f"SELECT * FROM {identifier}.snapshots").count(),
    )


def print_storage(measured: list[TableStorage], runs: int, policy: MaintenancePolicy) -> None:
    retention = policy.snapshot_retention / timedelta(days=1)
    print(
        f"\nStorage per table after {runs} runs (snapshot retention {retention:g} days, "
        f"at least the last {policy.retain_last} kept):"
    )
    headers = [
        "table",
        "data bytes",
        "data files",
        "metadata bytes",
        "metadata files",
        "metadata.json",
        "snapshots",
    ]
    rows: list[list[str | int]] = [
        [
            m.table,
            m.data_bytes,
            m.data_files,
            m.metadata_bytes,
            m.metadata_files,
            m.metadata_json_files,
            m.snapshots,
        ]
        for m in measured
    ]
    total: list[str | int] = ["total", *(sum(int(row[i]) for row in rows) for i in range(1, len(headers)))]
    print(text_table(headers, [*rows, total], thousands=True))


def _policy(retention_days: float | None, retain_last: int | None) -> MaintenancePolicy:
    defaults = MaintenancePolicy()
    return MaintenancePolicy(
        compact_at_delete_files=defaults.compact_at_delete_files,
        snapshot_retention=(
            timedelta(days=retention_days) if retention_days is not None else defaults.snapshot_retention
        ),
        retain_last=retain_last if retain_last is not None else defaults.retain_last,
        orphan_sweep_interval=defaults.orphan_sweep_interval,
    )


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [path for path in directory.rglob("*") if path.is_file() and not path.name.endswith(".crc")]


if __name__ == "__main__":
    main()
