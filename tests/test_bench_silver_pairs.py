"""The paired Silver benchmark times both jobs on the same runs and refuses pairs that did different work."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks.silver_pairs import _require_same_rows, ingest, measure_pairs
from local.sample_api.generator import SampleSource

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark


def test_each_pair_times_both_jobs_on_the_same_runs_and_checks_their_tables(
    spark: SparkSession, tmp_path: Path
) -> None:
    bronze = ingest(SampleSource(seed=5, initial_orders=300, change_fraction=0.2), tmp_path)

    measured = measure_pairs(spark, bronze, pairs=2, checkpoints=tmp_path / "checkpoints")

    assert [p.project_first for p in measured.full] == [True, False]
    for pair in (*measured.full, *measured.incremental):
        assert pair.project_s > 0 and pair.baseline_s > 0
    # The full run lies alone in its Bronze copy: the change's run is only in the other.
    assert bronze.change_run not in str(list(bronze.full_root.rglob("*")))
    assert bronze.change_run in str(list(bronze.both_root.rglob("*")))


def test_a_pair_whose_tables_differ_is_refused(spark: SparkSession) -> None:
    spark.sql("CREATE NAMESPACE IF NOT EXISTS pairs_a")
    spark.sql("CREATE NAMESPACE IF NOT EXISTS pairs_b")
    spark.sql("CREATE TABLE pairs_a.orders USING iceberg AS SELECT 1 AS order_id UNION ALL SELECT 2")
    spark.sql("CREATE TABLE pairs_b.orders USING iceberg AS SELECT 1 AS order_id")

    with pytest.raises(RuntimeError, match="differ"):
        _require_same_rows(spark, "pairs_a", "pairs_b")
    _require_same_rows(spark, "pairs_a", "pairs_a")
