"""A retried Silver run on real Iceberg: no double merge, and a reliable checkpoint deleted after each run
(a large batch's; a small one is cached, and leaves nothing in storage)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.dataset import Dataset
from etl.silver import job as silver
from tests.fixed_api import FixedPagesApi

pytestmark = pytest.mark.spark


def order(order_id: int, updated_at: str, status: str = "placed") -> str:
    return json.dumps(
        {
            "order_id": order_id,
            "customer_id": f"C{order_id}",
            "status": status,
            "amount": "10.00",
            "currency": "EUR",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": updated_at,
        }
    )


def land(bronze: Path, run_id: str, day: int, *pages: list[str]) -> None:
    with FixedPagesApi(list(pages)) as api:
        ingest(
            IngestionSettings(SourceSettings(api.url), str(bronze), "orders"),
            run_id,
            datetime(2026, 2, day, tzinfo=UTC),
        )


def merge(spark: SparkSession, bronze: Path, database: str, checkpoints: Path) -> silver.SilverSummary:
    argv = [
        "--bronze-root",
        str(bronze),
        "--silver-database",
        database,
        "--dataset",
        "orders",
        "--checkpoint-root",
        str(checkpoints),
    ]
    return silver.run(spark, silver.parse_args(argv))


def table(spark: SparkSession, database: str, name: str, *written_at: str) -> list[tuple[Any, ...]]:
    """Every row of the table, sorted, without the columns that say when the job wrote it."""
    rows = spark.table(f"{database}.{name}").drop(*written_at).collect()
    return sorted(tuple(row) for row in rows)


def tables(spark: SparkSession, database: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "orders": table(spark, database, "orders"),
        "orders_quarantine": table(spark, database, "orders_quarantine", "quarantined_at"),
        "ingestion_runs": table(spark, database, "ingestion_runs", "merged_at"),
    }


@pytest.fixture
def bronze(tmp_path: Path) -> Path:
    """Two ingestion runs: new orders, then updates, a stale version, a duplicate and invalid records."""
    root = tmp_path / "bronze"
    land(root, "r1", 1, [order(1, "2026-01-01T01:00:00Z"), order(2, "2026-01-01T01:00:00Z"), '"oops"'])
    land(
        root,
        "r2",
        2,
        [order(1, "2026-01-01T02:00:00Z", "paid"), order(2, "2026-01-01T00:30:00Z", "cancelled")],
        [order(3, "2026-01-01T03:00:00Z"), order(3, "2026-01-01T03:00:00Z"), order(4, "x", "lost")],
    )
    return root


def test_a_run_that_fails_after_the_merge_and_is_retried_equals_one_clean_run(
    spark: SparkSession, bronze: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = tmp_path / "checkpoints"
    clean = f"silver_{uuid.uuid4().hex[:8]}"
    merge(spark, bronze, clean, checkpoints)

    retried = f"silver_{uuid.uuid4().hex[:8]}"
    ledger_write = silver.save_ledger

    def die_before_the_ledger(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("executor lost")  # what FLEX reclaiming the last executors looks like

    monkeypatch.setattr(silver, "save_ledger", die_before_the_ledger)
    with pytest.raises(RuntimeError, match="executor lost"):
        merge(spark, bronze, retried, checkpoints)
    # The quarantine and the orders MERGE were committed, the ledger was not.
    assert tables(spark, retried)["orders"] == tables(spark, clean)["orders"]
    assert tables(spark, retried)["ingestion_runs"] == []

    monkeypatch.setattr(silver, "save_ledger", ledger_write)
    summary = merge(spark, bronze, retried, checkpoints)

    assert summary.runs == ("r1", "r2")  # both runs again: the ledger did not list them
    assert (summary.inserted, summary.updated) == (0, 0)  # every version is already stored
    assert summary.not_merged == summary.accepted == 6  # every accepted version is stored or older
    assert tables(spark, retried) == tables(spark, clean)
    assert len(tables(spark, clean)["orders"]) == 3
    assert len(tables(spark, clean)["orders_quarantine"]) == 2
    assert [row[0] for row in tables(spark, clean)["ingestion_runs"]] == ["r1", "r2"]
    assert merge(spark, bronze, retried, checkpoints) == silver.SilverSummary()  # nothing left to merge


def test_a_large_validated_batch_is_checkpointed_under_its_dataset_and_run_and_deleted_after_it(
    spark: SparkSession, bronze: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(silver, "CHECKPOINT_ABOVE_RECORDS", 7)  # the fixture's runs hold 8 records
    checkpoints = tmp_path / "checkpoints"
    seen: list[list[Path]] = []
    quarantine_write = silver.save_quarantine

    def look_then_save(spark: SparkSession, rejected: DataFrame, database: str, dataset: Dataset) -> None:
        seen.append([path for path in checkpoints.rglob("*") if path.is_file()])
        quarantine_write(spark, rejected, database, dataset)

    monkeypatch.setattr(silver, "save_quarantine", look_then_save)
    # The checkpoint of another dataset's Silver job of the same run, still running (in AWS they run side
    # by side): its directory must outlive this job.
    other = checkpoints / "customers-r2" / "0f1e2d3c" / "rdd-3"
    other.mkdir(parents=True)
    (other / "part-00000").write_bytes(b"rows")
    database = f"silver_{uuid.uuid4().hex[:8]}"
    summary = merge(spark, bronze, database, checkpoints)

    assert summary.records == 8
    (files,) = seen
    # Spark writes the checkpoint under a directory of its own inside the job's:
    # <root>/<dataset>-<run>/<uuid>/rdd-N.
    mine = [path for path in files if path.relative_to(checkpoints).parts[0] != "customers-r2"]
    assert mine
    assert {path.relative_to(checkpoints).parts[0] for path in mine} == {"orders-r2"}
    assert any(part.startswith("rdd-") for path in mine for part in path.parts)
    assert list(checkpoints.iterdir()) == [checkpoints / "customers-r2"]
    assert (other / "part-00000").read_bytes() == b"rows"


def test_a_failed_run_deletes_its_checkpoint_too(
    spark: SparkSession, bronze: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(silver, "CHECKPOINT_ABOVE_RECORDS", 0)
    checkpoints = tmp_path / "checkpoints"

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("MERGE failed")

    monkeypatch.setattr(silver, "save_latest", fail)
    with pytest.raises(RuntimeError, match="MERGE failed"):
        merge(spark, bronze, f"silver_{uuid.uuid4().hex[:8]}", checkpoints)
    assert list(checkpoints.iterdir()) == []


def test_a_small_batch_is_cached_not_checkpointed_and_merges_what_a_checkpointed_one_does(
    spark: SparkSession, bronze: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = tmp_path / "checkpoints"
    written: list[Path] = []
    cached: list[bool] = []
    quarantine_write = silver.save_quarantine

    def look_then_save(spark: SparkSession, rejected: DataFrame, database: str, dataset: Dataset) -> None:
        written.extend(path for path in checkpoints.rglob("*") if path.is_file())
        cached.append(any(frame.is_cached for frame in kept))
        quarantine_write(spark, rejected, database, dataset)

    kept: list[DataFrame] = []
    count_per_run = silver.count_per_run

    def remember(validated: DataFrame, *args: Any) -> Any:
        kept.append(validated)
        return count_per_run(validated, *args)

    monkeypatch.setattr(silver, "save_quarantine", look_then_save)
    monkeypatch.setattr(silver, "count_per_run", remember)
    small, limit = f"silver_{uuid.uuid4().hex[:8]}", silver.CHECKPOINT_ABOVE_RECORDS
    summary = merge(spark, bronze, small, checkpoints)
    monkeypatch.undo()
    monkeypatch.setattr(silver, "CHECKPOINT_ABOVE_RECORDS", 0)  # the oracle: the same runs checkpointed
    large = f"silver_{uuid.uuid4().hex[:8]}"
    checkpointed = merge(spark, bronze, large, checkpoints)

    assert summary.records == 8 <= limit
    assert (written, cached) == ([], [True])
    assert not kept[0].is_cached  # released after the run
    assert replace_maintenance(summary) == replace_maintenance(checkpointed)
    assert tables(spark, small) == tables(spark, large)
    assert len(tables(spark, small)["orders"]) == 3


def replace_maintenance(summary: silver.SilverSummary) -> silver.SilverSummary:
    """The summary without what the maintenance did (each database's first orphan sweep)."""
    return dataclasses.replace(summary, maintenance=())
