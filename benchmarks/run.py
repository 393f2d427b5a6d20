"""`make bench`: the local pipeline on N orders, then again after a 1% change.

For each Silver write mode (merge-on-read, copy-on-write) it runs the real pipeline twice through the
local runner and prints time and throughput per step and the ratio of the incremental run to the full run
(Spark start excluded: one session serves every run). It does the same for the naive alternative, which
rebuilds Silver from all of Bronze and overwrites it. Then it times the ingestion against a plain
fetch-and-gzip loop and measures its peak memory at two sizes (benchmarks/ingestion.py), and last the bytes
on disk per table after `--storage-runs` small runs (benchmarks/storage.py). The sample API always runs in
a separate process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.ingestion import IngestionFigures, measure_ingestion, print_ingestion
from benchmarks.naive import rebuild_silver
from benchmarks.sample_process import sample_api_process
from benchmarks.storage import TableStorage, print_storage, storage_after_runs
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.registry import silver_tables
from etl.spark.jobs import ensure_tables
from etl.spark.maintenance import MaintenancePolicy
from local.report import text_table
from local.runner import LocalLayout, LocalRunner, PipelineRun
from local.sample_api.generator import SampleSource
from local.session import build_session

MODES = ("merge-on-read", "copy-on-write")
TARGET_INCREMENTAL_RATIO = 0.25


@dataclass
class Measurement:
    approach: str  # a write mode, or "overwrite (naive)"
    run: str  # "full" or "incremental"
    records: int  # records ingested by the run
    ingest_s: float
    silver_s: float
    gold_s: float

    @property
    def total_s(self) -> float:
        return self.ingest_s + self.silver_s + self.gold_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--change", type=float, default=0.01, help="size of the second run, as a share")
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--skip-ingestion", action="store_true", help="skip the ingestion / floor timing and memory"
    )
    parser.add_argument("--storage-runs", type=int, default=30, help="0 to skip the storage measurement")
    parser.add_argument("--storage-orders", type=int, default=10_000)
    args = parser.parse_args()

    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    spark = build_session(str(args.work_dir / "warehouse"), app_name="lakehouse-bench")
    spark.sparkContext.setLogLevel("ERROR")
    source = SampleSource(initial_orders=args.orders, change_fraction=args.change)
    print(
        f"Benchmark: {args.orders:,} orders, then a {args.change:.0%} change; sample API in its own process\n"
    )

    print("warming up (a small run compiles Spark's code paths before anything is timed) ...", flush=True)
    pipeline_runs(
        spark, SampleSource(initial_orders=2_000), args.work_dir / "warm-up", MODES[0], with_naive=True
    )

    measurements: list[Measurement] = []
    for position, mode in enumerate(args.modes.split(",")):
        measurements += pipeline_runs(spark, source, args.work_dir, mode, with_naive=position == 0)
    print_pipeline(measurements, args.orders)

    ingestion: IngestionFigures | None = None
    if not args.skip_ingestion:
        ingestion = measure_ingestion(args.orders, args.work_dir)
        print_ingestion(ingestion)

    storage: list[TableStorage] = []
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

    results = args.work_dir / "results.json"
    results.write_text(
        json.dumps(
            {
                "orders": args.orders,
                "change": args.change,
                "runs": [asdict(m) for m in measurements],
                "ingestion": ingestion.as_dict() if ingestion else None,
                "storage": [asdict(table) for table in storage],
            },
            indent=2,
        )
    )
    print(f"\nFigures saved to {results}")


def pipeline_runs(
    spark: Any, source: SampleSource, work_dir: Path, mode: str, with_naive: bool
) -> list[Measurement]:
    """The full run and the incremental run with `mode`, and (if asked) the naive rebuild after each."""
    tag = f"{work_dir.name}_{mode}".replace("-", "_")
    layout = LocalLayout(work_dir / tag, silver_database=f"silver_{tag}", gold_database=f"gold_{tag}")
    overrides = {f"write.{op}.mode": mode for op in ("merge", "update", "delete")}
    ensure_tables(spark, layout.silver_database, silver_tables(), overrides)
    naive_database = f"silver_naive_{tag}"
    if with_naive:
        ensure_tables(spark, naive_database, silver_tables())

    results = []
    for batches, run in ((1, "full"), (2, "incremental")):
        print(f"{mode}: {run} run of {layout.data_dir.name} ...", flush=True)
        with sample_api_process(SampleSource(**{**asdict(source), "batches": batches})) as url:
            settings = IngestionSettings(SourceSettings(url, page_size=1000), str(layout.bronze))
            executed = LocalRunner(layout, settings, spark_factory=lambda: spark).run()
        measured = _measure(mode, run, executed)
        results.append(measured)
        if with_naive:
            began = time.perf_counter()
            rebuild_silver(spark, str(layout.bronze), naive_database)
            rebuild_s = time.perf_counter() - began
            # The same ingestion and Gold rebuild; only the Silver step differs.
            results.append(
                Measurement(
                    "overwrite (naive)", run, measured.records, measured.ingest_s, rebuild_s, measured.gold_s
                )
            )
    return results


def print_pipeline(measurements: list[Measurement], orders: int) -> None:
    rows = []
    for m in measurements:
        rows.append(
            [
                m.approach,
                m.run,
                m.records,
                round(m.ingest_s, 1),
                round(m.silver_s, 1),
                round(m.gold_s, 1),
                round(m.total_s, 1),
                round(m.records / m.ingest_s) if m.ingest_s else 0,
                round(m.records / m.silver_s) if m.silver_s else 0,
            ]
        )
    headers = [
        "approach",
        "run",
        "records",
        "ingest s",
        "silver s",
        "gold s",
        "total s",
        "ingest rec/s",
        "silver rec/s",
    ]
    print("\n" + text_table(headers, rows, thousands=True))
    print("\nIncremental run / full run (Spark start excluded; target <= 0.25):")
    for approach in dict.fromkeys(m.approach for m in measurements):
        full = next(m for m in measurements if m.approach == approach and m.run == "full")
        incremental = next(m for m in measurements if m.approach == approach and m.run == "incremental")
        ratio = incremental.total_s / full.total_s
        verdict = "meets" if ratio <= TARGET_INCREMENTAL_RATIO else "misses"
        silver = incremental.silver_s / full.silver_s
        print(f"  {approach:<18} {ratio:.3f} ({verdict} the target); Silver step alone {silver:.3f}")


def _measure(approach: str, run: str, executed: PipelineRun) -> Measurement:
    seconds = {step.step.name: step.seconds for step in executed.steps}
    records = int(executed.result("Bronze")["records"])
    return Measurement(approach, run, records, seconds["Bronze"], seconds["Silver"], seconds["Gold"])


if __name__ == "__main__":
    main()
