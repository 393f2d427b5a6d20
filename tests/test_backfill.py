"""A long history backfilled in many bounded ingestion runs ends in the same tables as one unbounded run.

Both pipelines run the real steps (ingestion against the sample API on 127.0.0.1, the Silver and Gold
jobs on real Iceberg tables) through the local runner. The bounded one stops each ingestion run after two
pages and allows three runs per pipeline run, so the backfill takes many runs of the whole pipeline, and
one of its ingestion runs is killed half way.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from etl import registry
from etl.bronze import ingest as ingestion_module
from etl.bronze.layout import BronzeLayout, list_run_ids, read_manifest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.spark.jobs import ensure_tables
from etl.storage import open_store
from local.runner import LocalLayout, LocalRunner, PipelineRun
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer
from tests.test_ingest import StoreThatDies, after_checks

pytestmark = pytest.mark.spark

PAGE_SIZE = 50
# Orders alone: the bounded runs below are counted per ingestion; customers exist, empty, for Gold.
ONLY_ORDERS = ("orders",)
LINEAGE = ("ingestion_run_id", "ingested_at", "source_object")


class Lakehouse:
    """A data directory and its own Silver and Gold databases in the shared test catalog."""

    def __init__(self, spark: SparkSession, root: Path, url: str, pages_per_ingestion: int | None) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.spark = spark
        self.layout = LocalLayout(root, silver_database=f"silver_{suffix}", gold_database=f"gold_{suffix}")
        settings = IngestionSettings(
            SourceSettings(url, page_size=PAGE_SIZE, backoff_base_seconds=0.0),
            str(self.layout.bronze),
            "orders",
        )
        ensure_tables(spark, self.layout.silver_database, registry.dataset("customers").tables)
        self.runner = LocalRunner(
            self.layout,
            settings,
            spark_factory=lambda: spark,
            deadline_factory=(lambda: after_checks(pages_per_ingestion)) if pages_per_ingestion else None,
        )

    def rows(self, table: str, drop: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        database = self.layout.gold_database if table.startswith("gold.") else self.layout.silver_database
        frame = self.spark.table(f"{database}.{table.split('.')[1]}").drop(*drop)
        return sorted((tuple(row) for row in frame.collect()), key=repr)


def test_a_backfill_in_bounded_runs_equals_one_unbounded_run(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SampleSource(seed=11, initial_orders=1200, change_fraction=0.25, batches=3)
    with SampleApiServer(source) as api:
        whole = Lakehouse(spark, tmp_path / "whole", api.url, pages_per_ingestion=None)
        (whole_ingestion,) = whole.runner.run(datasets=ONLY_ORDERS, run_id="whole").results("Bronze")

        bounded = Lakehouse(spark, tmp_path / "bounded", api.url, pages_per_ingestion=2)
        runs: list[PipelineRun] = [bounded.runner.run(datasets=ONLY_ORDERS, run_id="run-01", max_runs=3)]
        # The next pipeline run's second ingestion dies after one page: its pages have no manifest.
        real_open_store = open_store
        opened = Counter[str]()

        def dying_store(root: str) -> Any:
            opened["stores"] += 1
            return StoreThatDies(Path(root), pages=1) if opened["stores"] == 2 else real_open_store(root)

        monkeypatch.setattr(ingestion_module, "open_store", dying_store)
        with pytest.raises(KeyboardInterrupt):
            bounded.runner.run(datasets=ONLY_ORDERS, run_id="run-02", max_runs=3)
        monkeypatch.setattr(ingestion_module, "open_store", real_open_store)
        while runs[-1].result("Bronze")["has_more"]:
            runs.append(
                bounded.runner.run(datasets=ONLY_ORDERS, run_id=f"run-{len(runs) + 2:02d}", max_runs=3)
            )
            assert len(runs) < 30, "the backfill does not converge"

    served = sum(1 for _ in source.records())
    assert whole_ingestion["records"] == served and not whole_ingestion["has_more"]
    assert all(len(run.results("Bronze")) == 3 for run in runs[:-1])  # the cap, then the next run goes on

    # The same tables: orders (but for lineage), the quarantined records, both Gold tables.
    assert bounded.rows("silver.orders", LINEAGE) == whole.rows("silver.orders", LINEAGE)
    for gold in ("gold.daily_sales", "gold.customer_summary"):
        assert bounded.rows(gold) == whole.rows(gold)
    quarantine = bounded.rows("silver.orders_quarantine")
    assert {(r[0], r[1]) for r in quarantine} == {
        (r[0], r[1]) for r in whole.rows("silver.orders_quarantine")
    }
    # Nothing twice in Silver: one row per order, per quarantined (object, line), per merged run.
    assert len({r[0] for r in bounded.rows("silver.orders")}) == len(bounded.rows("silver.orders"))
    assert len({(r[2], r[3]) for r in quarantine}) == len(quarantine)
    # Every finished ingestion run (the killed pipeline run's first one too) was merged once; the killed
    # ingestion left pages that no manifest lists, and nothing of it reached Silver.
    store = open_store(str(bounded.layout.bronze))
    layout = BronzeLayout("orders")
    finished = [read_manifest(store, layout, run_id) for run_id in list_run_ids(store, layout)]
    manifests = [m for m in finished if m is not None]
    ledger = bounded.rows("silver.ingestion_runs")
    assert sorted(r[0] for r in ledger) == sorted(m.run_id for m in manifests)
    assert [m.run_id for m in manifests if m.run_id.startswith("run-02")] == ["run-02-001"]
    assert any("run_id=run-02-002/" in key for key in store.list("orders/"))
    # Nothing lost: every record ingested was accepted or quarantined; the records at each stop's
    # watermark came twice.
    ingested = sum(m.records for m in manifests)
    assert sum(r[3] for r in ledger) == ingested
    assert sum(r[4] + r[5] for r in ledger) == ingested
    assert sum(r[5] for r in ledger) == len(quarantine)

    print(
        f"\nbackfill: {served} records served; bounded: {len(manifests)} ingestion runs in {len(runs) + 1} "
        f"pipeline runs (one of them killed in its second ingestion), {ingested} records ingested "
        f"({ingested - served} at a stop's watermark, twice); silver and gold tables equal"
    )
