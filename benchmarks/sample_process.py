"""The sample API in a process of its own, so it takes no CPU or memory from what is measured."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.timestamps import utc_now
from local.sample_api.generator import SampleSource


@contextmanager
def sample_api_process(source: SampleSource) -> Iterator[str]:
    """Serve `source` on 127.0.0.1 from a child process; yields the base URL."""
    command = [
        sys.executable, "-m", "local", "sample-api", "--port", "0",
        "--orders", str(source.initial_orders), "--batches", str(source.batches),
        "--seed", str(source.seed), "--change-fraction", str(source.change_fraction),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # "Sample API on http://127.0.0.1:PORT/v1/orders, ..."
        base_url = re.match(r"Sample API on (http://[^/\s,]+)/", banner)
        if base_url is None:
            raise RuntimeError(f"the sample API did not start: {banner!r}")
        yield base_url.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def land_orders(bronze: Path, orders: int, run_id: str) -> None:
    """Ingest `orders` sample orders into `bronze` as the run `run_id`, served from a process of its own."""
    with sample_api_process(SampleSource(initial_orders=orders)) as url:
        ingest(IngestionSettings(SourceSettings(url), str(bronze), "orders"), run_id, utc_now())
