"""What the reliable checkpoint costs the Silver job, against the local checkpoint it replaced.

Lands N sample orders in Bronze once, then merges them into fresh Silver databases, alternating a
Silver job that checkpoints its validated batch to a directory (what it does: it survives the loss of
an executor) with one whose checkpoint is local (executor memory and disk: it does not). Prints each
time and the ratios of the fastest and of the median runs; one SparkSession serves every run, after a
small warm-up.

    .venv/bin/python -m benchmarks.checkpoint_cost --orders 300000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from benchmarks.sample_process import land_orders
from etl import pipeline
from etl.silver import job as silver

KINDS = ("local", "reliable")


@contextmanager
def local_checkpoints() -> Iterator[None]:
    """Make `DataFrame.checkpoint` the local checkpoint the Silver job used before."""
    reliable = DataFrame.checkpoint

    def local(self: DataFrame, eager: bool = True) -> DataFrame:
        return self.localCheckpoint(eager)

    DataFrame.checkpoint = local  # type: ignore[method-assign]
    try:
        yield
    finally:
        DataFrame.checkpoint = reliable  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-checkpoint"))
    args = parser.parse_args()

    from local.session import build_session

    shutil.rmtree(args.work_dir, ignore_errors=True)
    spark = build_session(str(args.work_dir / "warehouse"), app_name="lakehouse-bench-checkpoint")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"landing {args.orders:,} orders in Bronze ...", flush=True)
    bronze = args.work_dir / "bronze"
    land_orders(bronze, args.orders, "full")
    warm_up = args.work_dir / "warm-up-bronze"
    land_orders(warm_up, 2_000, "warm-up")
    for kind in KINDS:
        merge(spark, warm_up, args.work_dir, f"warm_up_{kind}", kind)

    seconds: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for repeat in range(args.repeats):
        for kind in KINDS:
            took = merge(spark, bronze, args.work_dir, f"silver_{kind}_{repeat}", kind)
            seconds[kind].append(took)
            print(f"  {kind:<8} checkpoint: Silver {took:.1f} s", flush=True)
    # The fastest run is the one other processes disturbed least: its ratio is the cost of the checkpoint.
    for label, pick in (("fastest", min), ("median", statistics.median)):
        local, reliable = (pick(seconds[kind]) for kind in KINDS)
        print(
            f"Silver on {args.orders:,} records, {label} of {args.repeats}: local checkpoint {local:.1f} s, "
            f"reliable checkpoint {reliable:.1f} s, ratio {reliable / local:.2f}"
        )


def merge(spark: Any, bronze: Path, work_dir: Path, database: str, kind: str) -> float:
    """Seconds the Silver job takes to merge everything in `bronze` into a fresh database."""
    argv = [
        pipeline.BRONZE_ROOT, str(bronze),
        pipeline.SILVER_DATABASE, database,
        pipeline.DATASET, "orders",
        pipeline.CHECKPOINT_ROOT, str(work_dir / "checkpoints"),
    ]  # fmt: skip
    arguments = silver.parse_args(argv)
    began = time.perf_counter()
    if kind == "local":
        with local_checkpoints():
            silver.run(spark, arguments)
    else:
        silver.run(spark, arguments)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
