"""The Silver job against real Iceberg tables, with Bronze runs landed by the real ingestion."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl.bronze.ingest import ingest
from etl.bronze.layout import BronzeLayout, read_manifest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.registry import silver_tables
from etl.silver import job as silver
from etl.spark.branches import MAIN, branch_snapshots, iceberg_table
from etl.spark.jobs import ensure_tables
from etl.spark.maintenance import ORPHANS_REMOVED_AT
from etl.storage import LocalStore
from tests import reference
from tests.fixed_api import FixedPagesApi

pytestmark = pytest.mark.spark


def order(order_id: int, updated_at: str, status: str = "placed", amount: object = "10.00") -> str:
    return json.dumps(
        {
            "order_id": order_id,
            "customer_id": f"C{order_id}",
            "status": status,
            "amount": amount,
            "currency": "EUR",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": updated_at,
        }
    )


class Lake:
    """A Bronze directory and a fresh Silver database in the shared test catalog."""

    def __init__(self, spark: SparkSession, root: Path, write_mode: str | None = None) -> None:
        self.spark = spark
        self.bronze = str(root / "bronze")
        self.database = f"silver_{uuid.uuid4().hex[:8]}"
        if write_mode is not None:
            modes = {f"write.{op}.mode": write_mode for op in ("merge", "update", "delete")}
            ensure_tables(spark, self.database, silver_tables(), modes)

    def land(self, run_id: str, *pages: list[str], day: int = 1) -> None:
        with FixedPagesApi(list(pages)) as api:
            ingest(
                IngestionSettings(SourceSettings(api.url), self.bronze, "orders"),
                run_id,
                datetime(2026, 2, day, tzinfo=UTC),
            )

    @property
    def arguments(self) -> list[str]:
        """The Silver job's arguments that merge this lake's orders."""
        return ["--bronze-root", self.bronze, "--silver-database", self.database, "--dataset", "orders"]

    def merge(self, run_id: str | None = None) -> silver.SilverSummary:
        argv = self.arguments + (["--run-id", run_id] if run_id else [])
        return silver.run(self.spark, silver.parse_args(argv))

    def orders(self) -> list[tuple[object, ...]]:
        rows = self.spark.table(f"{self.database}.orders").collect()
        return sorted(
            (r.order_id, r.status, r.amount, r.updated_at.isoformat(), r.ingestion_run_id) for r in rows
        )

    def quarantine(self) -> list[tuple[object, ...]]:
        rows = self.spark.table(f"{self.database}.orders_quarantine").collect()
        return sorted((r.reason, r.raw_record, r.ingestion_run_id, r.line_number) for r in rows)

    def snapshots(self, table: str) -> int:
        return self.spark.sql(f"SELECT * FROM {self.database}.{table}.snapshots").count()


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> Lake:
    return Lake(spark, tmp_path)


def test_merges_valid_records_and_quarantines_invalid_ones(lake: Lake) -> None:
    bad_status = order(3, "2026-01-01T01:00:00Z", status="lost")
    lake.land(
        "r1", [order(1, "2026-01-01T01:00:00Z"), '"oops"'], [order(2, "2026-01-01T02:00:00Z"), bad_status]
    )

    summary = lake.merge("r1")

    assert (summary.records, summary.accepted, summary.quarantined) == (4, 2, 2)
    assert (summary.inserted, summary.updated, summary.not_merged) == (2, 0, 0)
    assert lake.orders() == [
        (1, "placed", Decimal("10.00"), "2026-01-01T01:00:00", "r1"),
        (2, "placed", Decimal("10.00"), "2026-01-01T02:00:00", "r1"),
    ]
    assert lake.quarantine() == [
        ("invalid_status", bad_status, "r1", 2),
        ("not_an_object", '"oops"', "r1", 2),
    ]
    ledger = lake.spark.table(f"{lake.database}.ingestion_runs").collect()
    assert [(r.run_id, r.records, r.accepted, r.quarantined) for r in ledger] == [("r1", 4, 2, 2)]


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_newer_versions_update_older_ones_never_do(
    spark: SparkSession, tmp_path: Path, write_mode: str
) -> None:
    lake = Lake(spark, tmp_path, write_mode)
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-01T05:00:00Z", amount=20)])
    lake.merge()
    lake.land(
        "r2",
        [
            order(1, "2026-01-01T06:00:00Z", status="PAID"),  # newer: updates
            order(2, "2026-01-01T04:00:00Z", status="cancelled"),  # late, older: ignored
            order(2, "2026-01-01T07:00:00Z", status="on_hold"),  # newer but invalid: quarantined
            order(4, "2026-01-01T01:00:00Z"),  # new key
            order(4, "2026-01-01T01:00:00Z"),  # exact duplicate
        ],
        day=2,
    )

    summary = lake.merge("r2")

    # The older version of 2 and the duplicate of 4 are not merged; copy-on-write does not record updates.
    updates_recorded = write_mode == "merge-on-read"
    assert (summary.inserted, summary.updated, summary.not_merged) == (
        (1, 1, 2) if updates_recorded else (1, None, None)
    )
    assert summary.quarantined == 1
    assert lake.orders() == [
        (1, "paid", Decimal("10.00"), "2026-01-01T06:00:00", "r2"),
        (2, "placed", Decimal("20.00"), "2026-01-01T05:00:00", "r1"),
        (4, "placed", Decimal("10.00"), "2026-01-01T01:00:00", "r2"),
    ]
    assert [row[0] for row in lake.quarantine()] == ["invalid_status"]


def test_a_second_run_of_the_job_merges_nothing_twice(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '{"order_id": "x"}'])
    lake.merge()
    orders, quarantine = lake.snapshots("orders"), lake.snapshots("orders_quarantine")

    assert lake.merge() == silver.SilverSummary()
    assert (lake.snapshots("orders"), lake.snapshots("orders_quarantine")) == (orders, quarantine)


def test_a_batch_interrupted_before_the_ledger_is_merged_again_without_duplicates(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '{"order_id": "x"}', '{"order_id": "x"}'])
    lake.merge()
    before = (lake.orders(), lake.quarantine())
    # As if the job had died after the MERGEs but before recording the run in the ledger.
    lake.spark.sql(f"DELETE FROM {lake.database}.ingestion_runs WHERE run_id = 'r1'")

    summary = lake.merge()

    assert summary.runs == ("r1",)
    assert (summary.inserted, summary.updated, summary.not_merged) == (0, 0, 1)
    assert (lake.orders(), lake.quarantine()) == before
    assert len(before[1]) == 1  # two identical bad lines are one rejected record: kept once


def test_pending_runs_merged_together_equal_runs_merged_one_by_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    runs = {
        "r1": [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-01T05:00:00Z", status="paid")],
        "r2": [
            order(1, "2026-01-01T05:00:00Z", status="shipped"),
            order(2, "2026-01-01T06:00:00Z", "refunded"),
        ],
        "r3": [order(2, "2026-01-01T03:00:00Z", status="cancelled"), order(3, "2026-01-01T01:00:00Z")],
    }
    one_by_one, together = Lake(spark, tmp_path / "a"), Lake(spark, tmp_path / "b")
    for day, (run_id, records) in enumerate(runs.items(), start=1):
        one_by_one.land(run_id, records, day=day)
        one_by_one.merge(run_id)
        together.land(run_id, records, day=day)

    summary = together.merge()

    assert summary.runs == ("r1", "r2", "r3")
    assert together.orders() == one_by_one.orders()
    # r2's version of order 1 has the same updated_at as r1's: the first received (r1) is kept.
    assert together.orders()[0][1] == "placed"


def test_a_silver_job_started_without_a_dataset_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As Glue starts it: the job's settings and Glue's own arguments, but no --dataset.
    argv = ["--bronze-root", str(tmp_path), "--silver-database", "silver", "--JOB_ID", "j_1"]
    with pytest.raises(SystemExit) as refused:
        silver.main(argv)
    assert refused.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "silver: error: the following arguments are required: --dataset"
    )


def test_an_unknown_run_id_fails_with_a_clear_message(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    with pytest.raises(FileNotFoundError, match="ingestion run r9 has no manifest"):
        lake.merge("r9")


def test_a_manifest_elsewhere_than_the_bronze_root_fails_before_merging(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    argv = [*lake.arguments, "--run-id", "r1"]
    with pytest.raises(ValueError, match="different Bronze locations"):
        silver.run(
            lake.spark, silver.parse_args([*argv, "--manifest", "s3://other/_manifests/orders/r1.json"])
        )
    assert lake.spark.table(f"{lake.database}.orders").count() == 0


def test_refuses_a_run_whose_objects_do_not_match_its_manifest(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-01T05:00:00Z")])
    store = LocalStore(Path(lake.bronze))
    manifest = read_manifest(store, BronzeLayout("orders"), "r1")
    assert manifest is not None
    store.put(manifest.objects[0].key, gzip.compress(order(1, "2026-01-01T05:00:00Z").encode() + b"\n"))

    with pytest.raises(silver.BronzeMismatch, match="lists 2 records, Bronze holds 1"):
        lake.merge()
    assert lake.spark.table(f"{lake.database}.orders").count() == 0


def test_tables_are_iceberg_v2_merge_on_read_partitioned_by_month(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    lake.merge()
    properties = dict(
        (row.key, row.value) for row in lake.spark.sql(f"SHOW TBLPROPERTIES {lake.database}.orders").collect()
    )
    assert properties["format-version"] == "2"
    assert properties["write.merge.mode"] == "merge-on-read"
    partitions = lake.spark.sql(f"SELECT partition FROM {lake.database}.orders.partitions").collect()
    assert [row.partition.asDict() for row in partitions] == [{"created_at_month": 672}]  # 2026-01


def ledger_rows(lake: Lake) -> list[tuple[object, ...]]:
    rows = lake.spark.table(f"{lake.database}.ingestion_runs").collect()
    return sorted((r.run_id, r.records, r.accepted, r.quarantined, dict(r.unknown_fields)) for r in rows)


def test_a_run_that_only_re_delivers_merged_records_is_recorded_with_no_spark_merge(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at_watermark = json.dumps({**json.loads(order(2, "2026-01-01T06:00:00Z")), "channel": "web"})
    first = [order(1, "2026-01-01T05:00:00Z"), '"oops"', at_watermark, order(3, "2026-01-01T06:00:00Z")]
    # What a source with nothing new serves from the watermark on: the records stamped with it, again.
    again = [at_watermark, '"oops"', order(3, "2026-01-01T06:00:00Z")]
    fast, normal = Lake(spark, tmp_path / "fast"), Lake(spark, tmp_path / "normal")
    for lake in (fast, normal):
        lake.land("r1", first)
        lake.merge()
        lake.land("r2", again, day=2)
    orders, quarantine = fast.snapshots("orders"), fast.snapshots("orders_quarantine")

    summary = fast.merge()
    # The oracle: the same run through the normal path.
    monkeypatch.setattr(silver, "find_redelivery", lambda *_: None)
    merged = normal.merge()

    assert summary.redelivered and not merged.redelivered
    assert summary.runs == merged.runs == ("r2",)
    figures = ("records", "accepted", "quarantined", "inserted", "updated", "not_merged")
    assert (
        [getattr(summary, f) for f in figures] == [getattr(merged, f) for f in figures] == [3, 2, 1, 0, 0, 2]
    )
    assert summary.unknown_fields == merged.unknown_fields == {"channel": 1}
    assert ledger_rows(fast) == ledger_rows(normal)
    assert (fast.orders(), fast.quarantine()) == (normal.orders(), normal.quarantine())
    assert (fast.snapshots("orders"), fast.snapshots("orders_quarantine")) == (orders, quarantine)


def test_a_record_new_at_the_watermark_is_merged_the_normal_way(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), order(2, "2026-01-01T06:00:00Z")])
    lake.merge()
    # Stamped with the watermark's instant but not delivered before: it must reach Silver.
    lake.land("r2", [order(2, "2026-01-01T06:00:00Z"), order(5, "2026-01-01T06:00:00Z")], day=2)

    summary = lake.merge()

    assert not summary.redelivered
    assert (summary.inserted, summary.not_merged) == (1, 1)
    assert [row[0] for row in lake.orders()] == [1, 2, 5]


def test_lines_are_numbered_per_object_and_a_page_the_manifest_does_not_list_is_not_read(lake: Lake) -> None:
    bad = [order(1, "2026-01-01T05:00:00Z", status="lost"), '"x"']
    lake.land("r1", [order(2, "2026-01-01T05:00:00Z"), *bad], [order(3, "2026-01-01T05:00:00Z"), "[]"])
    store = LocalStore(Path(lake.bronze))
    manifest = read_manifest(store, BronzeLayout("orders"), "r1")
    assert manifest is not None
    # A page an earlier attempt of the run left behind, beyond the pages its manifest lists.
    leftover = manifest.objects[0].key.replace("page-000001", "page-000009")
    store.put(leftover, gzip.compress(order(9, "2026-01-01T05:00:00Z").encode() + b"\n"))

    summary = lake.merge()

    assert summary.records == 5
    assert [row[0] for row in lake.orders()] == [2, 3]
    first, second = (obj.key for obj in manifest.objects)
    objects = {r.order_id: r.source_object for r in lake.spark.table(f"{lake.database}.orders").collect()}
    assert objects == {2: first, 3: second}
    assert [(row[1], row[3]) for row in lake.quarantine()] == [(bad[0], 2), ('"x"', 3), ("[]", 2)]


def test_the_lines_of_a_single_page_are_spread_over_every_core_with_their_numbers(lake: Lake) -> None:
    lines = [order(n, "2026-01-01T05:00:00Z") for n in range(1, 41)]
    lake.land("r1", lines)
    store = LocalStore(Path(lake.bronze))
    manifest = read_manifest(store, BronzeLayout("orders"), "r1")
    assert manifest is not None

    raw = silver.load_raw_records(lake.spark, lake.bronze, [manifest])

    cores = lake.spark.sparkContext.defaultParallelism
    assert raw.rdd.getNumPartitions() >= cores
    assert sorted((r.line_number, r.raw_record) for r in raw.collect()) == list(enumerate(lines, start=1))


def test_lines_end_where_spark_text_reader_ends_them_with_or_without_carriage_returns(lake: Lake) -> None:
    lake.land("r1", ["a", "b"], ["c"])
    store = LocalStore(Path(lake.bronze))
    manifest = read_manifest(store, BronzeLayout("orders"), "r1")
    assert manifest is not None
    with_returns, without = (obj.key for obj in manifest.objects)
    store.put(with_returns, gzip.compress(b'{"a": 1}\r\n{"b":\r 2}\r\r{"c": 3}\n\n{"d": 4}\r\n'))
    store.put(without, gzip.compress(b'{"e": 5}\n\n {"f": 6}'))

    raw = silver.load_raw_records(lake.spark, lake.bronze, [manifest])

    read = {(r.source_object, r.line_number, r.raw_record) for r in raw.collect()}
    by_spark = [
        (key, [row.value for row in lake.spark.read.text(store.uri(key)).collect()])
        for key in (with_returns, without)
    ]
    assert read == {(key, n, line) for key, lines in by_spark for n, line in enumerate(lines, start=1)}
    assert len(read) == 10


def test_a_batch_without_a_rejected_record_makes_no_quarantine_commit(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    lake.merge()
    assert lake.snapshots("orders_quarantine") == 0  # never written: no MERGE of an empty batch either
    lake.land("r2", [order(1, "2026-01-01T06:00:00Z", status="paid"), '"oops"'], day=2)
    lake.merge()
    quarantine = lake.snapshots("orders_quarantine")
    lake.land("r3", [order(2, "2026-01-01T07:00:00Z")], day=3)

    summary = lake.merge()

    assert (summary.records, summary.quarantined, summary.inserted) == (1, 0, 1)
    assert quarantine == 1
    assert lake.snapshots("orders_quarantine") == quarantine
    assert lake.quarantine() == [("not_an_object", '"oops"', "r2", 2)]
    assert [row[0] for row in lake.orders()] == [1, 2]


def test_the_ledger_counts_every_run_as_a_plain_count_of_its_lines(lake: Lake) -> None:
    runs = {
        "r1": [
            json.dumps({**json.loads(order(1, "2026-01-01T05:00:00Z")), "channel": "web", "coupon": None}),
            order(2, "2026-01-01T05:00:00Z", status="lost"),
            '{"order_id": 3, "channel": "x", "channel": "y"}',
            '"not an object"',
            "[1, 2]",
        ],
        "r2": [],  # an empty run: a row with zero counts
        "r3": [json.dumps({**json.loads(order(4, "2026-01-01T05:00:00Z")), "Channel": 1}), "{}"],
    }
    for day, (run_id, lines) in enumerate(runs.items(), start=1):
        lake.land(run_id, lines, day=day)

    summary = lake.merge()

    plain = []
    for run_id, lines in runs.items():
        accepted = sum(1 for line in lines if reference.check(line)[1] is None)
        plain.append((run_id, len(lines), accepted, len(lines) - accepted, reference.unknown_fields(lines)))
    assert ledger_rows(lake) == plain
    assert [row[1:4] for row in plain] == [(5, 1, 4), (0, 0, 0), (2, 1, 1)]
    assert summary.unknown_fields == {"Channel": 1, "channel": 2, "coupon": 1}
    assert (summary.records, summary.accepted, summary.quarantined) == (7, 2, 5)


def test_a_run_on_a_branch_leaves_the_maintenance_to_the_publishing(lake: Lake) -> None:
    tables = [f"{lake.database}.{name}" for name in ("orders", "orders_quarantine", "ingestion_runs")]
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '"oops"'])
    lake.merge()  # on main: maintained, each table's orphan files swept once
    lake.land("r2", [order(1, "2026-01-01T06:00:00Z", status="paid"), '"again"'], day=2)
    before = {table: (table_properties(lake, table), branch_snapshots(lake.spark, table)) for table in tables}
    # A policy that would compact the update's delete file and sweep again, were it applied.
    argv = [*lake.arguments, "--branch", "r2"]
    policy = ["--compact-at-delete-files", "1", "--orphan-sweep-days", "0"]

    summary = silver.run(lake.spark, silver.parse_args(argv + policy))

    assert (summary.runs, summary.updated, summary.maintenance) == (("r2",), 1, ())
    for table in tables:
        properties, heads = before[table]
        assert ORPHANS_REMOVED_AT in properties
        assert table_properties(lake, table) == properties
        assert branch_snapshots(lake.spark, table)[MAIN] == heads[MAIN]  # main is as it was
        assert "r2" in branch_snapshots(lake.spark, table)


def table_properties(lake: Lake, table: str) -> dict[str, str]:
    return {row.key: row.value for row in lake.spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}


SILVER = ("orders", "orders_quarantine", "ingestion_runs")


def merge_on_branch(lake: Lake, branch: str) -> silver.SilverSummary:
    argv = [*lake.arguments, "--branch", branch]
    return silver.run(lake.spark, silver.parse_args(argv))


def metadata_files(lake: Lake) -> dict[str, str]:
    """Each Silver table's current metadata file: every commit (a write, a new branch) writes one."""
    return {
        name: str(
            iceberg_table(lake.spark, f"{lake.database}.{name}").operations().current().metadataFileLocation()
        )
        for name in SILVER
    }


def branches(lake: Lake) -> dict[str, set[str]]:
    return {name: set(branch_snapshots(lake.spark, f"{lake.database}.{name}")) for name in SILVER}


def test_on_a_branch_a_run_with_nothing_to_merge_creates_no_branch_and_commits_nothing(lake: Lake) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '"oops"'])
    lake.merge()
    before = metadata_files(lake)

    summary = merge_on_branch(lake, "r2")

    assert summary == silver.SilverSummary()
    assert metadata_files(lake) == before
    assert branches(lake) == {name: {MAIN} for name in SILVER}


def test_on_a_branch_a_run_that_only_re_delivers_records_writes_the_ledger_alone(lake: Lake) -> None:
    at_watermark = order(2, "2026-01-01T06:00:00Z")
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '"oops"', at_watermark])
    lake.merge()
    lake.land("r2", [at_watermark, '"oops"'], day=2)
    before = metadata_files(lake)
    main_ledger = branch_snapshots(lake.spark, f"{lake.database}.ingestion_runs")[MAIN]

    summary = merge_on_branch(lake, "r2")

    assert summary.redelivered and (summary.records, summary.accepted) == (2, 1)
    after = metadata_files(lake)
    assert {name for name in SILVER if after[name] != before[name]} == {"ingestion_runs"}
    assert branches(lake) == {"orders": {MAIN}, "orders_quarantine": {MAIN}, "ingestion_runs": {MAIN, "r2"}}
    ledger = f"{lake.database}.ingestion_runs"
    assert branch_snapshots(lake.spark, ledger)[MAIN] == main_ledger
    on_branch = lake.spark.sql(f"SELECT run_id, records, accepted FROM {ledger} VERSION AS OF 'r2'").collect()
    assert sorted(tuple(row) for row in on_branch) == [("r1", 3, 2), ("r2", 2, 1)]


def test_on_a_branch_a_batch_without_a_rejected_record_leaves_the_quarantine_without_the_branch(
    lake: Lake,
) -> None:
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z"), '"oops"'])
    lake.merge()
    lake.land(
        "r2", [order(1, "2026-01-01T06:00:00Z", status="paid"), order(2, "2026-01-01T06:00:00Z")], day=2
    )
    quarantine = metadata_files(lake)["orders_quarantine"]

    summary = merge_on_branch(lake, "r2")

    assert (summary.inserted, summary.updated, summary.quarantined) == (1, 1, 0)
    assert branches(lake) == {
        "orders": {MAIN, "r2"},
        "orders_quarantine": {MAIN},
        "ingestion_runs": {MAIN, "r2"},
    }
    assert metadata_files(lake)["orders_quarantine"] == quarantine
    orders = f"{lake.database}.orders"
    on_branch = lake.spark.sql(f"SELECT order_id, status FROM {orders} VERSION AS OF 'r2'").collect()
    assert sorted(tuple(row) for row in on_branch) == [(1, "paid"), (2, "placed")]
    assert [(row[0], row[1]) for row in lake.orders()] == [(1, "placed")]  # main is as it was
