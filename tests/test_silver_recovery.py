"""The Silver job against what goes wrong around it: versions from the future, records delivered again,
damaged Bronze objects, gaps between runs, a dropped table; and the ways out (repair, rewind, rebuild)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from etl.bronze.layout import BronzeLayout, list_run_ids, read_manifest, read_watermark
from etl.silver import job as silver
from etl.storage import LocalStore
from local.cli import _one_line
from local.rebuild import RebuildRefused, rebuild
from local.repair import RepairRefused, repair_run, rewind_watermark
from tests.test_silver_job import Lake, order

pytestmark = pytest.mark.spark

LAYOUT = BronzeLayout("orders")


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> Lake:
    return Lake(spark, tmp_path)


def store_of(lake: Lake) -> LocalStore:
    return LocalStore(Path(lake.bronze))


def object_path(lake: Lake, run_id: str, page: int = 0) -> Path:
    manifest = read_manifest(store_of(lake), LAYOUT, run_id)
    assert manifest is not None
    return Path(lake.bronze) / manifest.objects[page].key


def ledger(lake: Lake) -> list[tuple[Any, ...]]:
    rows = lake.spark.table(f"{lake.database}.ingestion_runs").collect()
    return sorted((r.run_id, r.records, r.accepted, r.quarantined) for r in rows)


def test_a_version_stamped_after_its_run_started_is_quarantined_and_the_real_update_wins(lake: Lake) -> None:
    # Run r1 starts 2026-02-01T00:00Z; the tolerance is the watermark's: five minutes.
    bogus = order(1, "9999-12-31T00:00:00Z", status="cancelled")
    just_late = order(3, "2026-02-01T00:05:00.000001Z")
    lake.land(
        "r1",
        [order(1, "2026-01-01T05:00:00Z"), bogus, order(2, "2026-02-01T00:05:00Z"), just_late],
        day=1,
    )
    first = lake.merge()
    # The genuine later update, and the bogus version delivered again (it does not move the watermark).
    lake.land("r2", [order(1, "2026-02-01T12:00:00Z", status="paid"), bogus], day=2)
    second = lake.merge()

    assert (first.quarantined, second.quarantined) == (2, 1)
    assert lake.orders() == [
        (1, "paid", Decimal("10.00"), "2026-02-01T12:00:00", "r2"),
        (2, "placed", Decimal("10.00"), "2026-02-01T00:05:00", "r1"),
    ]
    assert lake.quarantine() == [
        ("future_updated_at", bogus, "r1", 2),  # kept once, as first received
        ("future_updated_at", just_late, "r1", 4),
    ]
    assert ledger(lake) == [("r1", 4, 2, 2), ("r2", 2, 1, 1)]


def test_an_invalid_record_delivered_again_by_a_re_ingested_window_is_quarantined_once(lake: Lake) -> None:
    bad, other_bad = '{"order_id": "x"}', '{"order_id": 5, "status": "lost"}'
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), bad, other_bad, bad])
    lake.merge()
    # The same window again, as after a crash between manifest and watermark, or a deleted watermark.
    lake.land("r2", [order(1, "2026-01-01T05:00:00Z"), bad, other_bad, bad], day=2)
    again = lake.merge()

    assert again.quarantined == 3  # the run's figures count every rejection it received
    assert lake.quarantine() == [
        ("invalid_order_id", bad, "r1", 2),
        ("missing_customer_id", other_bad, "r1", 3),
    ]
    assert ledger(lake) == [("r1", 4, 1, 3), ("r2", 4, 1, 3)]


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "not UTF-8", "a carriage return", "missing"])
def test_a_damaged_bronze_object_is_named_with_its_run_and_repaired_losing_nothing_else(
    lake: Lake, damage: str
) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-01T05:00:00Z")], day=1)
    lake.merge()
    lake.land(
        "r2", [order(1, "2026-01-02T05:00:00Z", status="paid")], [order(3, "2026-01-02T06:00:00Z")], day=2
    )
    lake.land("r3", [order(4, "2026-01-03T05:00:00Z")], day=3)  # piles up behind r2
    path = object_path(lake, "r2", page=1)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "corrupted":
        path.write_bytes(data[:20] + bytes(b ^ 0x5A for b in data[20:30]) + data[30:])
    elif damage == "not UTF-8":  # complete gzip, the listed number of lines
        path.write_bytes(gzip.compress(b"\xff" + gzip.decompress(data)))
    elif damage == "a carriage return":  # a line end to Spark's text reader and the Silver job: one more line
        text = gzip.decompress(data)
        path.write_bytes(gzip.compress(text[:10] + b"\r" + text[10:]))
    else:
        path.unlink()

    with pytest.raises(silver.DamagedBronzeObject) as refused:
        lake.merge()
    message = str(refused.value)
    assert f"Bronze object {path} of run r2 is damaged" in message
    assert "1 other run waits to be merged" in message
    assert f"`lakehouse bronze repair r2 --dataset orders --bronze-root {lake.bronze}`" in message
    assert "\n" not in message
    assert [row[0] for row in ledger(lake)] == ["r1"]  # nothing merged

    repaired = repair_run(store_of(lake), LAYOUT, "r2")
    assert repaired.watermark.after == datetime(2026, 1, 1, 5, tzinfo=UTC)  # where r2 started from
    assert list_run_ids(store_of(lake), LAYOUT) == ["r1", "r3"]
    # The next run pulls r2's window again from the source (which still serves its records).
    lake.land(
        "r4",
        [order(1, "2026-01-02T05:00:00Z", status="paid"), order(3, "2026-01-02T06:00:00Z")],
        [order(4, "2026-01-03T05:00:00Z")],
        day=4,
    )
    summary = lake.merge()

    assert summary.runs == ("r3", "r4")
    assert lake.orders() == [
        (1, "paid", Decimal("10.00"), "2026-01-02T05:00:00", "r4"),
        (2, "placed", Decimal("10.00"), "2026-01-01T05:00:00", "r1"),
        (3, "placed", Decimal("10.00"), "2026-01-02T06:00:00", "r4"),
        (4, "placed", Decimal("10.00"), "2026-01-03T05:00:00", "r3"),
    ]


def test_a_repair_refuses_a_run_whose_objects_are_fine(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    with pytest.raises(RepairRefused, match="every object of run r1 is readable"):
        repair_run(store_of(lake), LAYOUT, "r1")
    with pytest.raises(RepairRefused, match="run r9 has no manifest"):
        repair_run(store_of(lake), LAYOUT, "r9")


def test_a_gap_left_by_a_deleted_manifest_is_reported_before_merging_and_closed_by_a_rewind(
    lake: Lake,
) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")], day=1)
    lake.merge()
    lake.land("r2", [order(2, "2026-01-02T05:00:00Z")], day=2)
    lake.land("r3", [order(3, "2026-01-03T05:00:00Z")], day=3)
    (Path(lake.bronze) / LAYOUT.manifest_key("r2")).unlink()  # r2's pages stay, unlisted

    with pytest.raises(silver.BronzeGap) as refused:
        lake.merge()
    message = str(refused.value)
    assert "run r3 ingested changes since 2026-01-02T05:00:00Z" in message
    assert "reached only 2026-01-01T05:00:00Z (run r1)" in message
    assert "runs with pages but no manifest: r2" in message
    assert (
        f"`lakehouse bronze rewind --to 2026-01-01T05:00:00Z --dataset orders --bronze-root {lake.bronze}`"
        in message
    )
    assert [row[0] for row in ledger(lake)] == ["r1"]

    rewind_watermark(store_of(lake), LAYOUT, "2026-01-01T05:00:00Z", "rewind")
    lake.land("r4", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-02T05:00:00Z")], day=4)
    summary = lake.merge()

    assert summary.runs == ("r3", "r4")
    assert [row[0] for row in lake.orders()] == [1, 2, 3]


def test_runs_that_repeat_a_window_are_no_gap(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")], day=1)
    lake.merge()
    # A deleted watermark: the next run starts from the initial watermark again.
    (Path(lake.bronze) / LAYOUT.watermark_key).unlink()
    lake.land("r2", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-02T05:00:00Z")], day=2)
    assert lake.merge().runs == ("r2",)


def test_the_watermark_only_moves_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = rewind_watermark(store, LAYOUT, "2026-01-02T00:00:00Z", "rewind")
    assert (first.before, first.after) == (None, datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(RepairRefused, match="would skip the changes in between"):
        rewind_watermark(store, LAYOUT, "2026-01-03T00:00:00Z", "rewind")
    rewind_watermark(store, LAYOUT, "2026-01-01T00:00:00+01:00", "rewind")
    assert read_watermark(store, LAYOUT) == datetime(2025, 12, 31, 23, tzinfo=UTC)


def test_a_dropped_orders_table_is_refused_naming_rebuild_not_recreated_empty(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    lake.merge()
    lake.spark.sql(f"DROP TABLE {lake.database}.orders")
    lake.land("r2", [order(2, "2026-01-02T05:00:00Z")], day=2)

    with pytest.raises(silver.SilverTableMissing, match="run `lakehouse rebuild`"):
        lake.merge()
    assert not lake.spark.catalog.tableExists(f"{lake.database}.orders")


def whole_table(spark: SparkSession, identifier: str) -> list[tuple[Any, ...]]:
    """Every row, every column but the job's own clock (quarantined_at, merged_at)."""
    frame = spark.table(identifier).drop("quarantined_at", "merged_at")
    return sorted((tuple(row) for row in frame.collect()), key=repr)


def test_a_rebuild_from_bronze_gives_back_exactly_the_tables_merged_run_by_run(lake: Lake) -> None:
    gold_database = lake.database.replace("silver", "gold")
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '{"x": 1}', order(2, "2026-01-01T05:00:00Z")], day=1)
    lake.merge()
    lake.land(
        "r2",
        [order(1, "2026-01-01T05:00:00Z", status="paid"), order(2, "2026-01-02T05:00:00Z", "refunded")],
        ['{"x": 1}', order(3, "2026-01-03T05:00:00Z"), order(4, "9999-01-01T00:00:00Z")],
        day=2,
    )
    lake.merge()
    silver_tables = ("orders", "orders_quarantine", "ingestion_runs")
    before = {table: whole_table(lake.spark, f"{lake.database}.{table}") for table in silver_tables}
    lake.spark.sql(f"DROP TABLE {lake.database}.orders")

    rebuilt = rebuild(lake.spark, lake.bronze, lake.database, gold_database)

    assert rebuilt.silver["orders"].runs == ("r1", "r2")
    assert {table: whole_table(lake.spark, f"{lake.database}.{table}") for table in silver_tables} == before
    assert rebuilt.gold.rows == {"daily_sales": 1, "customer_summary": 3, "sales_by_country": 1}


def test_a_rebuild_refuses_a_damaged_object_and_a_window_still_to_ingest_before_it_drops_any_table(
    lake: Lake,
) -> None:
    gold_database = lake.database.replace("silver", "gold")
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")], day=1)
    lake.land("r2", [order(2, "2026-01-02T05:00:00Z")], day=2)
    lake.merge()
    before = whole_table(lake.spark, f"{lake.database}.orders")
    path = object_path(lake, "r2")
    path.write_bytes(path.read_bytes()[:20])

    with pytest.raises(silver.DamagedBronzeObject) as damaged:
        rebuild(lake.spark, lake.bronze, lake.database, gold_database)
    message = str(damaged.value)
    assert message.startswith(f"Bronze object {path} of run r2 is damaged: it is not a complete gzip object")
    assert message.endswith(
        f"Nothing was dropped. Set the run aside: `lakehouse bronze repair r2 --dataset orders --bronze-root "
        f"{lake.bronze}`, then run the pipeline, which ingests its window again; rebuild after that if you "
        "still need to"
    )
    assert whole_table(lake.spark, f"{lake.database}.orders") == before

    # Set aside, r2's window waits for the next ingestion run: a replay now would lose order 2.
    repair_run(store_of(lake), LAYOUT, "r2")
    with pytest.raises(
        RebuildRefused, match=r"the orders watermark \(2026-01-01T05:00:00Z\) is behind"
    ) as early:
        rebuild(lake.spark, lake.bronze, lake.database, gold_database)
    assert str(early.value).endswith("Nothing was dropped. Run the pipeline first, then rebuild")
    assert whole_table(lake.spark, f"{lake.database}.orders") == before

    lake.land("r3", [order(2, "2026-01-02T05:00:00Z")], day=3)  # the window ingested again
    rebuilt = rebuild(lake.spark, lake.bronze, lake.database, gold_database)
    assert rebuilt.silver["orders"].runs == ("r1", "r3")
    assert sorted(row[0] for row in lake.spark.table(f"{lake.database}.orders").collect()) == [1, 2]


def test_a_table_directory_that_cannot_be_written_is_named_in_the_one_line_error(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")], day=1)
    lake.merge()
    # Running as root, permissions would not stop a write: a file where the next partition's directory
    # must go fails the same Parquet writer as a read-only directory does.
    warehouse = Path(lake.spark.conf.get("spark.sql.catalog.lakehouse.warehouse") or "")
    blocked = warehouse / lake.database / "orders" / "data" / "created_at_month=2026-03"
    blocked.write_text("in the way")
    march = order(2, "2026-02-01T05:00:00Z").replace("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z")
    lake.land("r2", [march], day=3)

    with pytest.raises(Exception) as failed:
        lake.merge()
    line = _one_line(failed.value)
    assert line.startswith("java.io.UncheckedIOException: Failed to create Parquet file (caused by ")
    assert str(blocked) in line
