"""Silver orders against the hand-written job, timed in alternating pairs: the median of the pairs' ratios.

`make bench` times the project's Silver step and the baseline once per size and run, the baseline always
second; on a shared machine the baseline's own time moves by about 20% from one bench to the next, and a
target stated as one ratio (0.8 on the full load at 1M, 1.0 on the 1% change) moves with it. Here both
jobs merge the same two Bronze runs of orders (the full batch, then the change) into fresh databases of
their own, `--pairs` times, alternating which of the two goes first: each pair gives a ratio of times
measured side by side, and their median is the figure to hold against the target.

    .venv/bin/python -m benchmarks.silver_pairs --orders 1000000 --pairs 5

The project's job runs as the pipeline runs it (`etl.silver.job.run`, on a branch named after the run,
so without the maintenance the Audit step does after publishing); after each pair its `silver.orders`
and the baseline's must hold the same rows, or the pair is refused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import handwritten
from benchmarks.report import SILVER_FULL_RATIO, SILVER_INCREMENTAL_RATIO
from benchmarks.sample_process import sample_api_process
from etl import pipeline, registry
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.catalog import table_identifier
from etl.silver import job as silver
from etl.spark.branches import publish
from etl.spark.jobs import ensure_tables
from etl.tables import SILVER_INGESTION_RUNS
from local.runner import LocalLayout, LocalRunner
from local.sample_api.generator import SampleSource
from local.session import build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PAGE_SIZE = 1000
TARGET_ORDERS = 1_000_000
BRONZE_ONLY = pipeline.Pipeline(name="bronze", steps=(pipeline.BRONZE,), per_dataset=1, exclusive=False)


@dataclass(frozen=True)
class BronzeRuns:
    """Where the full batch lies alone (`full_root`) and with the change after it (`both_root`)."""

    full_root: Path
    both_root: Path
    full_run: str
    change_run: str


@dataclass(frozen=True)
class Pair:
    project_s: float
    baseline_s: float
    project_first: bool

    @property
    def ratio(self) -> float:
        return self.project_s / self.baseline_s


@dataclass(frozen=True)
class PairedRuns:
    full: list[Pair]
    incremental: list[Pair]


def ingest(source: SampleSource, work_dir: Path) -> BronzeRuns:
    """The orders of the full batch and of the change, ingested as the pipeline's Bronze step does."""
    layout = LocalLayout(work_dir / "source", silver_database="unused", gold_database="unused")
    run_ids = []
    for batches in (1, 2):
        with sample_api_process(replace(source, batches=batches)) as url:
            settings = IngestionSettings(
                SourceSettings(url, page_size=PAGE_SIZE), str(layout.bronze), "orders"
            )
            runner = LocalRunner(layout, settings, spark_factory=_no_spark)
            executed = runner.run(BRONZE_ONLY, datasets=["orders"])
        run_ids.append(str(executed.results("Bronze", "orders")[-1]["run_id"]))
        if batches == 1:
            shutil.copytree(layout.bronze, work_dir / "full")
    return BronzeRuns(work_dir / "full", layout.bronze, run_ids[0], run_ids[1])


def _no_spark() -> SparkSession:
    raise AssertionError("the Bronze step needs no Spark")


def measure_pairs(spark: SparkSession, bronze: BronzeRuns, pairs: int, checkpoints: Path) -> PairedRuns:
    """`pairs` full loads and changes by each job into fresh databases, alternating which goes first."""
    full: list[Pair] = []
    incremental: list[Pair] = []
    for number in range(pairs):
        tag = uuid.uuid4().hex[:8]
        project_db, baseline_db = f"silver_pairs_p_{tag}", f"silver_pairs_h_{tag}"
        ensure_tables(spark, baseline_db, registry.dataset("orders").tables)  # created by hand, untimed

        def project(root: Path, run_id: str, db: str = project_db) -> Callable[[], object]:
            argv = [
                pipeline.BRONZE_ROOT, str(root), pipeline.SILVER_DATABASE, db, pipeline.DATASET, "orders",
                pipeline.CHECKPOINT_ROOT, str(checkpoints), pipeline.BRANCH, run_id,
            ]  # fmt: skip
            return lambda: silver.run(spark, silver.parse_args(argv))

        def baseline(root: Path, run_id: str, db: str = baseline_db) -> Callable[[], object]:
            return lambda: handwritten.silver_orders(spark, str(root), db, [run_id])

        project_first = number % 2 == 0
        for runs, root, run_id in (
            (full, bronze.full_root, bronze.full_run),
            (incremental, bronze.both_root, bronze.change_run),
        ):
            jobs = (project(root, run_id), baseline(root, run_id))
            seconds = [_timed(job) for job in (jobs if project_first else jobs[::-1])]
            project_s, baseline_s = seconds if project_first else seconds[::-1]
            runs.append(Pair(project_s, baseline_s, project_first))
            # What the Audit step does after the run (untimed): the next run starts from `main`.
            for table in (*registry.dataset("orders").tables, SILVER_INGESTION_RUNS):
                publish(spark, project_db, table.name, run_id)
            _require_same_rows(spark, project_db, baseline_db)
    return PairedRuns(full, incremental)


def _timed(job: Callable[[], object]) -> float:
    began = time.perf_counter()
    job()
    return time.perf_counter() - began


def _require_same_rows(spark: SparkSession, project_db: str, baseline_db: str) -> None:
    """The two jobs did the same work, or their times are not comparable."""
    project = spark.table(table_identifier(project_db, "orders"))
    baseline = spark.table(table_identifier(baseline_db, "orders"))
    if project.exceptAll(baseline).count() or baseline.exceptAll(project).count():
        raise RuntimeError(f"{project_db}.orders and {baseline_db}.orders differ: the pair is not comparable")


def print_pairs(measured: PairedRuns, orders: int) -> None:
    print(f"\nSilver orders, {orders:,} orders: project / hand-written job, in pairs (first of the pair *)")
    print(f"{'pair':>4}  {'full s':>14}  {'ratio':>5}  {'1% change s':>14}  {'ratio':>5}")
    for number, (full, change) in enumerate(zip(measured.full, measured.incremental, strict=True), start=1):
        print(
            f"{number:>4}  {_seconds(full):>14}  {full.ratio:>5.2f}  "
            f"{_seconds(change):>14}  {change.ratio:>5.2f}"
        )
    for label, pairs, target in (
        ("full load", measured.full, SILVER_FULL_RATIO),
        ("1% change", measured.incremental, SILVER_INCREMENTAL_RATIO),
    ):
        median = statistics.median(p.ratio for p in pairs)
        # Issue 9 states the targets at 1M orders; at another size the ratio is shown without a verdict.
        if orders == TARGET_ORDERS:
            verdict = f"(target: at most {target}) {'PASS' if median <= target else 'MISS'}"
        else:
            verdict = f"(no verdict: the target, at most {target}, is set at 1M)"
        print(f"median ratio, {label}: {median:.3f} {verdict}")


def _seconds(pair: Pair) -> str:
    project, baseline = f"{pair.project_s:.2f}", f"{pair.baseline_s:.2f}"
    return f"{project}{'*' if pair.project_first else ''} / {baseline}{'' if pair.project_first else '*'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=TARGET_ORDERS)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--change", type=float, default=0.01, help="the change as a share of --orders")
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-pairs"))
    args = parser.parse_args()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    print(f"ingesting {args.orders:,} orders and a {args.change:.0%} change ...", flush=True)
    bronze = ingest(SampleSource(initial_orders=args.orders, change_fraction=args.change), args.work_dir)
    spark = build_session(str(args.work_dir / "warehouse"), app_name="lakehouse-bench-pairs")
    spark.sparkContext.setLogLevel("ERROR")
    print("warming up (one pair, untimed) ...", flush=True)
    measure_pairs(spark, bronze, 1, args.work_dir / "checkpoints")
    print(f"{args.pairs} pairs (load average {os.getloadavg()[0]:.1f}) ...", flush=True)
    measured = measure_pairs(spark, bronze, args.pairs, args.work_dir / "checkpoints")
    print_pairs(measured, args.orders)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
