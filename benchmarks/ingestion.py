"""Ingestion against its floor, and its peak memory at two sizes: `python -m benchmarks.ingestion --orders N`.

The floor is the plain loop anyone would write for the same job, with no project code: fetch a page with
`requests`, parse it, write its records as gzip JSON Lines, ask for the next page. The ingestion does more
per page (bodies streamed and counted, records cut out as the exact text received, writes that never
leave half an object), and pays for it by fetching the next page while it writes the current one: the
ratio ingestion / floor is what the project costs over the plain loop. Both read the same pages from the
same sample API, which runs in a process of its own; the passes alternate, and the best of each counts.

Peak memory is measured by one ingestion of N/10 and of N records, each in a fresh interpreter
(benchmarks/ingest_memory.py): flat in the number of records means a pull holds pages, never the pull.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from benchmarks.sample_process import sample_api_process
from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings
from local.report import text_table
from local.sample_api.generator import SampleSource

TARGET_FLOOR_RATIO = 1.1
TARGET_MEMORY_RATIO = 1.1
PAGE_SIZE = 1000


@dataclass
class IngestionFigures:
    orders: int
    records: int  # records each pass fetched (the ingestion and the floor fetch the same)
    ingestion_s: list[float]  # one per pass
    floor_s: list[float]
    memory: dict[int, dict[str, float]] = field(default_factory=dict)  # records -> benchmarks.ingest_memory

    @property
    def floor_ratio(self) -> float:
        return min(self.ingestion_s) / min(self.floor_s)

    def memory_ratio(self, key: str) -> float | None:
        """The largest pull's figure over the smallest's, or None with fewer than two sizes."""
        sizes = sorted(self.memory)
        return self.memory[sizes[-1]][key] / self.memory[sizes[0]][key] if len(sizes) > 1 else None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "floor_ratio": self.floor_ratio}


def fetch_and_gzip(base_url: str, out_dir: Path, page_size: int = PAGE_SIZE) -> int:
    """The floor: every page of the sample API's orders, each written as one gzip JSON Lines file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    params = {"updated_since": "1970-01-01T00:00:00Z", "limit": str(page_size)}
    records = number = 0
    while True:
        number += 1
        response = session.get(f"{base_url}/v1/orders", params=params, timeout=30)
        response.raise_for_status()
        page = response.json()
        lines = "".join(json.dumps(record) + "\n" for record in page["data"])
        body = gzip.compress(lines.encode("utf-8"), compresslevel=6, mtime=0)
        (out_dir / f"page-{number:06d}.jsonl.gz").write_bytes(body)
        records += len(page["data"])
        if page["next_cursor"] is None:
            return records
        params["cursor"] = page["next_cursor"]


def project_ingestion(base_url: str, out_dir: Path, page_size: int = PAGE_SIZE) -> int:
    """The project's ingestion of the same pages into a fresh local Bronze root."""
    settings = IngestionSettings(SourceSettings(base_url, page_size=page_size), str(out_dir), "orders")
    return ingest(settings, "bench").records


def measure_ingestion(
    orders: int, work_dir: Path, repeats: int = 3, memory_sizes: tuple[int, ...] | None = None
) -> IngestionFigures:
    """`repeats` timed passes of the ingestion and of the floor, alternating, then the memory probes."""
    passes: dict[str, tuple[Callable[[str, Path], int], list[float]]] = {
        "ingestion": (project_ingestion, []),
        "floor": (fetch_and_gzip, []),
    }
    fetched: set[int] = set()
    with sample_api_process(SampleSource(initial_orders=orders)) as url:
        # Untimed: the first pass pays for cold caches (the API's and the file system's).
        fetch_and_gzip(url, work_dir / "ingestion-warm-up")
        for repeat in range(repeats):
            order = list(passes) if repeat % 2 == 0 else list(reversed(passes))
            for name in order:
                run, seconds = passes[name]
                out_dir = work_dir / f"ingestion-{name}"
                shutil.rmtree(out_dir, ignore_errors=True)
                began = time.perf_counter()
                fetched.add(run(url, out_dir))
                seconds.append(time.perf_counter() - began)
                shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(work_dir / "ingestion-warm-up", ignore_errors=True)
    if len(fetched) != 1:
        raise RuntimeError(f"the ingestion and the floor fetched different numbers of records: {fetched}")
    sizes = memory_sizes if memory_sizes is not None else tuple(sorted({max(1, orders // 10), orders}))
    return IngestionFigures(
        orders=orders,
        records=fetched.pop(),
        ingestion_s=passes["ingestion"][1],
        floor_s=passes["floor"][1],
        memory={size: ingestion_memory(size, work_dir) for size in sizes},
    )


def ingestion_memory(orders: int, work_dir: Path) -> dict[str, float]:
    """Peak memory of one ingestion of `orders` records, in a fresh interpreter."""
    bronze = work_dir / f"memory-{orders}"
    with sample_api_process(SampleSource(initial_orders=orders)) as url:
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.ingest_memory",
                "--source-url",
                url,
                "--bronze-root",
                str(bronze),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    shutil.rmtree(bronze, ignore_errors=True)
    figures: dict[str, float] = json.loads(probe.stdout.strip().splitlines()[-1])
    return figures


def print_ingestion(figures: IngestionFigures) -> None:
    print(
        f"\nIngestion of {figures.records:,} records in pages of {PAGE_SIZE:,}, against the floor (a plain "
        f"loop: fetch with requests, gzip, write), best of {len(figures.floor_s)} passes each:"
    )
    rows = [
        [
            name,
            round(min(seconds), 2),
            round(statistics.median(seconds), 2),
            round(figures.records / min(seconds)),
        ]
        for name, seconds in (("ingestion", figures.ingestion_s), ("fetch-and-gzip floor", figures.floor_s))
    ]
    print(text_table(["", "best s", "median s", "records/s"], rows, thousands=True))
    ratio = figures.floor_ratio
    verdict = "meets" if ratio <= TARGET_FLOOR_RATIO else "misses"
    print(f"  ingestion / floor: {ratio:.2f} ({verdict} the target of at most {TARGET_FLOOR_RATIO})")
    if not figures.memory:
        return
    print(
        f"\nIngestion memory (target: the largest pull's peak at most {TARGET_MEMORY_RATIO} x the "
        "smallest's):"
    )
    rows = [
        [
            size,
            round(f["peak_mib"], 1),
            round(f["growth_mib"], 1),
            round(f["heap_peak_mib"], 1),
            round(f["seconds"], 1),
        ]
        for size, f in sorted(figures.memory.items())
    ]
    headers = ["records", "peak RSS MiB", "RSS growth MiB", "Python heap peak MiB", "seconds (traced)"]
    print(text_table(headers, rows, thousands=True))
    for label, key in (("peak RSS", "peak_mib"), ("Python heap peak", "heap_peak_mib")):
        memory_ratio = figures.memory_ratio(key)
        if memory_ratio is not None:
            verdict = "meets" if memory_ratio <= TARGET_MEMORY_RATIO else "misses"
            print(f"  {label}: ratio {memory_ratio:.2f} ({verdict} the target)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each")
    parser.add_argument(
        "--memory-orders",
        type=lambda text: tuple(int(size) for size in text.split(",") if size),
        default=None,
        help="sizes of the memory probes, comma-separated (default: N/10 and N; empty to skip)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-ingestion"))
    args = parser.parse_args()

    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    print(f"Ingestion benchmark: {args.orders:,} orders; sample API in its own process", flush=True)
    figures = measure_ingestion(args.orders, args.work_dir, args.repeats, args.memory_orders)
    print_ingestion(figures)
    results = args.work_dir / "results.json"
    results.write_text(json.dumps(figures.as_dict(), indent=2))
    print(f"\nFigures saved to {results}")


if __name__ == "__main__":
    main()
