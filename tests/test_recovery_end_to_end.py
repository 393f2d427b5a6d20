"""Recovering from a careless query and a damaged Bronze object with the `lakehouse` command, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixed_api import FixedPagesApi
from tests.reference import expected
from tests.test_end_to_end import assert_tables_match, lakehouse, read_table

pytestmark = pytest.mark.spark

TABLES = (
    "silver.orders",
    "silver.orders_quarantine",
    "silver.ingestion_runs",
    "gold.daily_sales",
    "gold.customer_summary",
)


def whole_tables(data_dir: Path) -> dict[str, list[str]]:
    """Every row of every table, without the columns that hold the jobs' own clock."""

    def row(values: dict[str, Any]) -> str:
        return repr(sorted((k, v) for k, v in values.items() if k not in ("quarantined_at", "merged_at")))

    return {name: sorted(row(values) for values in read_table(data_dir, name)) for name in TABLES}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_write_is_refused_by_query_and_a_dropped_table_is_restored_exactly_by_rebuild(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    for options in (["--sample-orders", "600", "--seed", "11"], []):
        result = lakehouse("run", "--data-dir", str(data_dir), *options)
        assert result.returncode == 0, result.stderr
    before = whole_tables(data_dir)

    refused = lakehouse("query", "DROP TABLE silver.orders", "--data-dir", str(data_dir))
    assert refused.returncode == 1
    assert error_lines(refused.stderr) == [
        "error: lakehouse query only reads (SELECT, WITH, TABLE, VALUES, SHOW, DESCRIBE, EXPLAIN); its plan "
        "(DropTable) may write: add --allow-writes to run it (Bronze keeps every record: `lakehouse "
        "rebuild` restores tables)"
    ]
    assert whole_tables(data_dir) == before
    dropped = lakehouse("query", "DROP TABLE silver.orders", "--data-dir", str(data_dir), "--allow-writes")
    assert dropped.returncode == 0, dropped.stderr
    assert not (data_dir / "warehouse" / "silver" / "orders").exists()

    rebuilt = lakehouse("rebuild", "--data-dir", str(data_dir))

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "Replayed 2 runs" in rebuilt.stdout
    assert whole_tables(data_dir) == before


def test_a_damaged_object_stops_silver_in_one_line_and_a_repair_loses_nothing(tmp_path: Path) -> None:
    records = [
        '{"order_id": 1, "customer_id": "a", "status": "paid", "amount": 5, "currency": "EUR", '
        '"created_at": "2025-05-01T00:00:00Z", "updated_at": "2025-05-01T00:00:00Z"}',
        '{"order_id": 2, "customer_id": "b", "status": "paid", "amount": 7, "currency": "EUR", '
        '"created_at": "2025-05-01T00:00:00Z", "updated_at": "2025-05-02T00:00:00Z"}',
        '{"order_id": "x"}',
    ]
    data_dir = tmp_path / "data"
    bronze = data_dir / "bronze"
    # One record in three is invalid, which the quarantine-rate audit would stop: published anyway.
    anyway = "--publish-anyway"
    with FixedPagesApi([records[:2], records[2:]]) as api:
        first = lakehouse("run", "--data-dir", str(data_dir), "--source-url", api.url, anyway)
        assert first.returncode == 0, first.stderr
        # As if the first run's objects had been damaged before Silver read them: it is pending again.
        forget = lakehouse(
            "query", "DELETE FROM silver.ingestion_runs", "--data-dir", str(data_dir), "--allow-writes"
        )
        assert forget.returncode == 0, forget.stderr
        (run_id,) = [path.stem for path in (bronze / "_manifests" / "orders").glob("*.json")]
        (damaged,) = bronze.glob(f"orders/*/run_id={run_id}/page-000001.jsonl.gz")
        damaged.write_bytes(damaged.read_bytes()[:30])

        stopped = lakehouse("run", "--data-dir", str(data_dir), "--source-url", api.url)

        assert stopped.returncode == 1
        (line,) = error_lines(stopped.stderr)
        assert line.startswith(
            f"error: Bronze object {damaged} of run {run_id} is damaged: it is not a complete gzip object ("
        )
        assert line.endswith(
            "Nothing was merged; 1 other run waits to be merged. Set the run aside and ingest its window "
            f"again: `lakehouse bronze repair {run_id} --dataset orders --bronze-root {bronze}`, "
            "then run the pipeline"
        )

        repaired = lakehouse("bronze", "repair", run_id, "--dataset", "orders", "--data-dir", str(data_dir))
        assert repaired.returncode == 0, repaired.stderr
        assert f"Run {run_id} is set aside" in repaired.stdout
        again = lakehouse("run", "--data-dir", str(data_dir), "--source-url", api.url, anyway)

    assert again.returncode == 0, again.stderr
    assert_tables_match(data_dir, expected([records]))
    ledger = [row for row in read_table(data_dir, "silver.ingestion_runs") if row["dataset"] == "orders"]
    assert run_id not in {row["run_id"] for row in ledger}
    assert len(ledger) == 2  # the run refused while run_id was damaged, and the one after the repair
    assert damaged.exists()  # set aside, not deleted
