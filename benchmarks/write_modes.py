"""The Silver write modes compared, and the naive alternative (`make bench ARGS=--write-modes`).

For each Silver write mode (merge-on-read, copy-on-write) the real pipeline runs twice through the local
runner (a full run, then a 1% change); after each run of the first mode the naive alternative rebuilds
Silver from all of Bronze and overwrites it. Prints time per step and the incremental / full ratio of
each. docs/benchmarks.md says what these figures decided.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.naive import rebuild_silver
from benchmarks.sample_process import sample_api_process
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.registry import silver_tables
from etl.spark.jobs import ensure_tables
from local.report import text_table
from local.runner import LocalLayout, LocalRunner, PipelineRun
from local.sample_api.generator import SampleSource

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
            settings = IngestionSettings(SourceSettings(url, page_size=1000), str(layout.bronze), "orders")
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
        "silver orders s",
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
    """Ingestion of every dataset, and Silver of orders alone: the naive rebuild replaces only that."""
    ingest_s = sum(step.seconds for step in executed.steps if step.step.name == "Bronze")
    silver_s = sum(s.seconds for s in executed.steps if s.step.name == "Silver" and s.dataset == "orders")
    gold_s = sum(step.seconds for step in executed.steps if step.step.name == "Gold")
    records = sum(int(result["records"]) for result in executed.results("Bronze", "orders"))
    return Measurement(approach, run, records, ingest_s, silver_s, gold_s)
