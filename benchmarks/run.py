"""`make bench`: the pipeline against a hand-written baseline, at several sizes, in one process.

For each size (200,000 and 1,000,000 orders by default; `--with-3m` adds 3,000,000) the sample API serves
the orders (and their customers) from a process of its own, and the local pipeline runs three times
through the local runner: a full run, a run after a 1% change, and a run with nothing new. After the
first two, the hand-written baseline (benchmarks/handwritten.py) merges the same Bronze runs of orders
into Silver tables of its own and rebuilds Gold from them with the project's SQL, each timed alone.

One SparkSession serves everything: its creation, timed first, is the "Spark start" a run with nothing
new is held to; no other figure includes it. A small warm-up of every code path comes before anything
is timed. Then the ingestion is timed against a plain fetch-and-gzip loop at the smallest size, and its
peak memory measured at two sizes (benchmarks/ingestion.py). Every figure is printed next to its target
from issue 9 (benchmarks/report.py) and saved as JSON (`--json`). `--write-modes` adds the comparison of
Silver write modes and the naive rebuild (benchmarks/write_modes.py), `--storage-runs N` the bytes on
disk per table after N small runs (benchmarks/storage.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import handwritten
from benchmarks.ingestion import measure_ingestion, print_ingestion
from benchmarks.report import (
    FULL,
    INCREMENTAL,
    NO_CHANGE,
    BenchFigures,
    RunTimes,
    StepTime,
    print_checks,
    print_times,
)
from benchmarks.sample_process import sample_api_process
from benchmarks.storage import print_storage, storage_after_runs
from benchmarks.write_modes import MODES, pipeline_runs, print_pipeline
from etl import registry
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.spark.jobs import ensure_tables
from etl.spark.maintenance import MaintenancePolicy
from local.runner import LocalLayout, LocalRunner, PipelineRun
from local.sample_api.generator import SampleSource
from local.session import build_session

DEFAULT_SIZES = (200_000, 1_000_000)
LARGE = 3_000_000
MEMORY_SIZES = (100_000, 1_000_000)  # the sizes issue 9's memory target compares
PAGE_SIZE = 1000
# The runs of each size: how many batches the sample API has published by then. The run with nothing new
# sees the same two batches again, so the source has only the record at the watermark to re-deliver.
BATCHES = {FULL: 1, INCREMENTAL: 2, NO_CHANGE: 2}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--orders",
        type=lambda text: tuple(int(size) for size in text.split(",") if size),
        default=DEFAULT_SIZES,
        help="the sizes, comma-separated (default: 200000,1000000)",
    )
    parser.add_argument("--with-3m", action="store_true", help=f"add a size of {LARGE:,} orders")
    parser.add_argument("--change", type=float, default=0.01, help="size of the second run, as a share")
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    parser.add_argument(
        "--json", type=Path, default=None, help="where to save the figures (default: in --work-dir)"
    )
    parser.add_argument(
        "--skip-ingestion", action="store_true", help="skip the ingestion / floor timing and memory"
    )
    parser.add_argument("--write-modes", action="store_true", help="compare the Silver write modes too")
    parser.add_argument("--storage-runs", type=int, default=0, help="measure storage after N small runs")
    parser.add_argument("--storage-orders", type=int, default=10_000)
    args = parser.parse_args()
    sizes = sorted({*args.orders, *((LARGE,) if args.with_3m else ())})

    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    began = time.perf_counter()
    spark = build_session(str(args.work_dir / "warehouse"), app_name="lakehouse-bench")
    figures = BenchFigures(spark_start_s=time.perf_counter() - began)
    spark.sparkContext.setLogLevel("ERROR")
    print(
        f"Benchmark: {', '.join(f'{size:,}' for size in sizes)} orders, each a full run, a {args.change:.0%} "
        f"change and a run with nothing new; Spark start {figures.spark_start_s:.1f} s; load average "
        f"{_load():.1f}; {os.cpu_count()} cores\n",
        flush=True,
    )

    print("warming up (a small run of every code path before anything is timed) ...", flush=True)
    measure_size(
        spark, SampleSource(initial_orders=2_000, change_fraction=args.change), args.work_dir, "warm_up"
    )
    for size in sizes:
        source = SampleSource(initial_orders=size, change_fraction=args.change)
        figures.runs += measure_size(spark, source, args.work_dir, f"o{size}")
    print_times(figures)

    if not args.skip_ingestion:
        memory = MEMORY_SIZES if sizes[-1] >= MEMORY_SIZES[-1] else (max(1, sizes[0] // 10), sizes[0])
        figures.ingestion = measure_ingestion(sizes[0], args.work_dir, memory_sizes=memory)
        print_ingestion(figures.ingestion)
    print_checks(figures.checks())

    if args.write_modes:
        source = SampleSource(initial_orders=sizes[0], change_fraction=args.change)
        measurements = []
        for position, mode in enumerate(MODES):
            measurements += pipeline_runs(spark, source, args.work_dir, mode, with_naive=position == 0)
        print_pipeline(measurements, sizes[0])
    if args.storage_runs:
        policy = MaintenancePolicy()
        storage = storage_after_runs(
            spark,
            LocalLayout(args.work_dir / "storage", "silver_storage", "gold_storage"),
            SampleSource(initial_orders=args.storage_orders, change_fraction=args.change),
            args.storage_runs,
            policy,
        )
        print_storage(storage, args.storage_runs, policy)

    results = args.json or args.work_dir / "results.json"
    results.write_text(json.dumps({"change": args.change, **figures.as_dict()}, indent=2))
    print(f"\nFigures saved to {results}; the benchmark took {time.perf_counter() - began:.0f} s")


def measure_size(spark: Any, source: SampleSource, work_dir: Path, tag: str) -> list[RunTimes]:
    """The full, incremental and no-change runs of the project on `source`, and the baseline's Silver
    orders and Gold after the first two, in databases of its own."""
    layout = LocalLayout(work_dir / tag, silver_database=f"silver_{tag}", gold_database=f"gold_{tag}")
    baseline_silver, baseline_gold = f"silver_baseline_{tag}", f"gold_baseline_{tag}"
    # Created untimed, as a hand-written job's tables are created once, by hand.
    ensure_tables(spark, baseline_silver, registry.dataset("orders").tables)
    ensure_tables(spark, baseline_gold, tuple(model.table for model in registry.gold_models()))
    measured = []
    for run, batches in BATCHES.items():
        print(f"{source.initial_orders:,} orders: {run} run ...", flush=True)
        with sample_api_process(replace(source, batches=batches)) as url:
            source_settings = SourceSettings(url, page_size=PAGE_SIZE)
            settings = IngestionSettings(source_settings, str(layout.bronze), "orders")
            executed = LocalRunner(layout, settings, spark_factory=lambda: spark).run()
        times = run_times(source.initial_orders, run, executed)
        if run != NO_CHANGE:
            run_ids = [str(result["run_id"]) for result in executed.results("Bronze", "orders")]
            began = time.perf_counter()
            handwritten.silver_orders(spark, str(layout.bronze), baseline_silver, run_ids)
            _set_baseline(times, "Silver orders", time.perf_counter() - began)
            began = time.perf_counter()
            silver = {d.name: layout.silver_database for d in registry.datasets()}
            handwritten.gold_models(spark, {**silver, "orders": baseline_silver}, baseline_gold)
            _set_baseline(times, "Gold", time.perf_counter() - began)
        times.load_average = _load()
        measured.append(times)
    return measured


def run_times(orders: int, run: str, executed: PipelineRun) -> RunTimes:
    """Seconds per step and dataset (a repeated step's runs added up), in the order they ran."""
    seconds: dict[tuple[str, str | None], float] = {}
    for step in executed.steps:
        key = (step.step.name, step.dataset)
        seconds[key] = seconds.get(key, 0.0) + step.seconds
    records = sum(
        int(result["records"]) for name in executed.datasets for result in executed.results("Bronze", name)
    )
    steps = [StepTime(step, dataset, spent) for (step, dataset), spent in seconds.items()]
    return RunTimes(orders, run, records, steps)


def _set_baseline(times: RunTimes, label: str, seconds: float) -> None:
    step = times.step(label)
    if step is not None:
        step.baseline_s = seconds


def _load() -> float:
    return os.getloadavg()[0]


if __name__ == "__main__":
    main()
