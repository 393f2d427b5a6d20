"""Run one ingestion in this process and print its memory figures, for the benchmark's subprocess.

Peak RSS includes the interpreter and the imported libraries (about 140 MiB), which do not depend on the
size of the pull; the traced Python heap peak (tracemalloc) and the RSS growth during the run are what
would grow if the ingestion held records.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc

from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-url", required=True)
    parser.add_argument("--bronze-root", required=True)
    args = parser.parse_args()
    settings = IngestionSettings(SourceSettings(args.source_url), args.bronze_root, "orders")
    baseline = peak_rss_mib()
    tracemalloc.start()
    began = time.perf_counter()
    summary = ingest(settings, "memory-probe")
    seconds = time.perf_counter() - began
    _, heap_peak = tracemalloc.get_traced_memory()
    figures = {
        "records": summary.records,
        "seconds": seconds,  # with tracemalloc on, which slows allocation
        "peak_mib": peak_rss_mib(),
        "growth_mib": peak_rss_mib() - baseline,
        "heap_peak_mib": heap_peak / 2**20,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
