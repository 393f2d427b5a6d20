"""Run one ingestion in this process and print its peak memory, for the benchmark's subprocess."""

from __future__ import annotations

import argparse
import json
import resource
import time

from etl.extract.ingest import ingest
from etl.extract.settings import IngestionSettings, SourceSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-url", required=True)
    parser.add_argument("--bronze-root", required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    summary = ingest(IngestionSettings(SourceSettings(args.source_url), args.bronze_root), "memory-probe")
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"records": summary.records, "seconds": seconds, "peak_mib": peak_kib / 1024}))


if __name__ == "__main__":
    main()
