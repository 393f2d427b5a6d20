"""What reading Bronze and validating its records cost the Silver job, without the writes after them.

Lands N sample orders in Bronze once, then times, best of `--repeats` passes with Spark's `noop` writer,
the Silver read (`load_raw_records`: every line with its object, line number and run) and the read plus
validation as the job runs them (`validate_records` over `bronze_slices_of`, one Python step), with the
quick path and with the rules alone; and, in this process
without Spark, the Python validation of 40,000 of those lines (`check_batches`, what each executor runs)
per record, both ways. One SparkSession, after a warm-up.

    .venv/bin/python -m benchmarks.validation_cost --orders 200000
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.sample_process import land_orders
from etl import registry
from etl.bronze.layout import BronzeLayout, list_run_ids, read_manifest
from etl.silver.job import bronze_slices_of, load_raw_records
from etl.silver.records import check_batches, validate_records
from etl.storage import open_store

PYTHON_LINES = 40_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-validation"))
    args = parser.parse_args()

    from local.session import build_session

    shutil.rmtree(args.work_dir, ignore_errors=True)
    spark = build_session(str(args.work_dir / "warehouse"), app_name="lakehouse-bench-validation")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"landing {args.orders:,} orders in Bronze ...", flush=True)
    bronze = args.work_dir / "bronze"
    land_orders(bronze, args.orders, "full")
    store = open_store(str(bronze))
    layout = BronzeLayout("orders")
    manifests = [m for m in (read_manifest(store, layout, r) for r in list_run_ids(store, layout)) if m]
    orders = registry.dataset("orders")

    seconds: dict[str, list[float]] = {"read": [], "read, quick path": [], "read, rules alone": []}
    for _ in range(args.repeats + 1):  # the first pass warms up; the two ways alternate
        seconds["read"].append(_noop(load_raw_records(spark, str(bronze), manifests)))
        slices = bronze_slices_of(spark, str(bronze), manifests)
        for label, quick in (("read, quick path", True), ("read, rules alone", False)):
            validated = validate_records(slices.frame(spark), orders, quick=quick, lines=slices.read_lines())
            seconds[label].append(_noop(validated))
    for label, passes in seconds.items():
        print(f"{label:<18} best of {args.repeats}: {min(passes[1:]):.2f} s on {args.orders:,} records")

    lines = [
        line
        for obj in (o for m in manifests for o in m.objects)
        for line in gzip.decompress(store.get(obj.key) or b"").decode().splitlines()
    ][:PYTHON_LINES]
    batch = pa.RecordBatch.from_pydict({"raw_record": lines})
    for label, quick in (("quick path", True), ("rules alone", False)):
        best = min(_python_pass(batch, orders, quick) for _ in range(args.repeats))
        print(
            f"Python validation, {label}: {best / len(lines) * 1e6:.1f} µs a record ({len(lines):,} records)"
        )


def _noop(frame: Any) -> float:
    began = time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - began


def _python_pass(batch: pa.RecordBatch, dataset: Any, quick: bool) -> float:
    began = time.perf_counter()
    for _ in check_batches(dataset, quick)(
        batch.slice(at, 10_000) for at in range(0, batch.num_rows, 10_000)
    ):
        pass
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
