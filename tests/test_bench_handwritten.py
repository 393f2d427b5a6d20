"""The bench's hand-written baseline makes the same Silver (and Gold) tables as the project."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.handwritten import gold_models, silver_orders
from etl import registry
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.catalog import table_identifier
from etl.spark.jobs import ensure_tables
from local.runner import LocalLayout, LocalRunner
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_the_baseline_makes_the_project_s_tables_after_a_full_and_an_incremental_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    layout = LocalLayout(tmp_path, silver_database="silver_bench_p", gold_database="gold_bench_p")
    silver, gold = "silver_bench_h", "gold_bench_h"
    orders = registry.dataset("orders")
    ensure_tables(spark, silver, orders.tables)
    ensure_tables(spark, gold, tuple(model.table for model in registry.gold_models()))
    source = SampleSource(seed=11, initial_orders=400, change_fraction=0.2, batches=1)

    for batches in (1, 2):
        with SampleApiServer(replace(source, batches=batches)) as api:
            settings = IngestionSettings(SourceSettings(api.url, page_size=100), str(layout.bronze), "orders")
            executed = LocalRunner(layout, settings, spark_factory=lambda: spark).run()
        run_ids = [result["run_id"] for result in executed.results("Bronze", "orders")]
        silver_orders(spark, str(layout.bronze), silver, run_ids)
        gold_models(spark, {"orders": silver, "customers": layout.silver_database}, gold)

        for table, order in (("orders", "order_id"),):
            project = spark.table(table_identifier(layout.silver_database, table)).orderBy(order).collect()
            baseline = spark.table(table_identifier(silver, table)).orderBy(order).collect()
            assert len(project) > 300
            assert baseline == project
        quarantined = f"{orders.name}_quarantine"
        project_rejects = spark.table(table_identifier(layout.silver_database, quarantined))
        baseline_rejects = spark.table(table_identifier(silver, quarantined))
        expected = {(r.raw_record, r.reason) for r in project_rejects.collect()}
        assert expected
        assert {(r.raw_record, r.reason) for r in baseline_rejects.collect()} == expected
        for model in registry.gold_models():
            name = model.table.name
            columns = [c.name for c in model.table.columns]
            project_gold = spark.table(table_identifier(layout.gold_database, name)).orderBy(*columns)
            baseline_gold = spark.table(table_identifier(gold, name)).orderBy(*columns)
            assert baseline_gold.collect() == project_gold.collect()
