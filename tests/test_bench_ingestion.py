"""The ingestion benchmark's floor fetches and writes the very pages the ingestion does."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.ingestion import IngestionFigures, fetch_and_gzip, project_ingestion
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer


def test_the_floor_writes_every_record_the_ingestion_writes(tmp_path: Path) -> None:
    source = SampleSource(seed=4, initial_orders=1_200, batches=1)
    with SampleApiServer(source) as api:
        floor_records = fetch_and_gzip(api.url, tmp_path / "floor", page_size=500)
        ingested = project_ingestion(api.url, tmp_path / "bronze", page_size=500)

    served = [json.loads(text) for _, _, text in source.records()]
    files = sorted((tmp_path / "floor").iterdir())
    assert [f.name for f in files] == ["page-000001.jsonl.gz", "page-000002.jsonl.gz", "page-000003.jsonl.gz"]
    written = [json.loads(line) for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert written == served
    assert floor_records == ingested == len(served)


def test_the_ratios_compare_the_best_pass_of_each() -> None:
    figures = IngestionFigures(
        orders=10,
        records=10,
        ingestion_s=[3.0, 2.2],
        floor_s=[2.0, 2.5],
        memory={
            100: {"peak_mib": 100.0, "heap_peak_mib": 5.0},
            1000: {"peak_mib": 104.0, "heap_peak_mib": 5.5},
        },
    )
    assert figures.floor_ratio == pytest.approx(1.1)
    assert figures.memory_ratio("peak_mib") == pytest.approx(1.04)
    assert figures.memory_ratio("heap_peak_mib") == pytest.approx(1.1)
