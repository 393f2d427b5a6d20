"""Silver transformations on small inline DataFrames."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from datasets.orders import DATASET as ORDERS
from etl.silver import records
from etl.silver.records import RAW_SCHEMA, quarantined_records
from etl.silver.rules import parse_record
from tests.reference import unknown_fields


def validate_orders(raw: DataFrame) -> DataFrame:
    return records.validate_records(raw, ORDERS)


def accepted_orders(validated: DataFrame) -> DataFrame:
    return records.accepted_records(validated, ORDERS)


def latest_versions(accepted: DataFrame) -> DataFrame:
    return records.latest_versions(accepted, ORDERS)


pytestmark = pytest.mark.spark

# Runs start after the records' updated_at: a version stamped later than its run's start is quarantined.
RUN_1 = datetime(2026, 1, 2, tzinfo=UTC)
RUN_2 = datetime(2026, 1, 3, tzinfo=UTC)
ORDER_SCHEMA = (
    "order_id BIGINT, customer_id STRING, status STRING, amount DECIMAL(12,2), currency STRING, "
    "created_at TIMESTAMP, updated_at TIMESTAMP, items STRING, "
    "ingestion_run_id STRING, ingested_at TIMESTAMP, source_object STRING"
)
ORDER_SCHEMA_NAMES = [column.split()[0] for column in ORDER_SCHEMA.split(", ")]


def raw(spark: SparkSession, rows: list[tuple[str, str, int, str, datetime]]) -> DataFrame:
    return spark.createDataFrame(rows, RAW_SCHEMA)


def order(order_id: object, updated_at: str, status: str = "paid", **extra: object) -> str:
    fields = {
        "order_id": order_id,
        "customer_id": "C1",
        "status": status,
        "amount": "10.5",
        "currency": "eur",
        "created_at": "2026-01-01T09:00:00+01:00",
        "updated_at": updated_at,
        **extra,
    }
    return json.dumps(fields)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_splits_valid_and_invalid_records_and_keeps_every_row(spark: SparkSession) -> None:
    rows = [
        (order(1, "2026-01-01T10:00:00Z"), "o/a", 1, "r1", RUN_1),
        ('"just text"', "o/a", 2, "r1", RUN_1),
        (order("2", "2026-01-01T11:00:00Z", status="lost"), "o/b", 1, "r1", RUN_1),
        (order("3", "2026-01-01T12:00:00Z", items=[{"sku": "A"}]), "o/b", 2, "r1", RUN_1),
    ]
    validated = validate_orders(raw(spark, rows))
    assert validated.count() == 4

    expected_accepted = spark.createDataFrame(
        [
            (
                1,
                "C1",
                "paid",
                Decimal("10.50"),
                "EUR",
                ts("2026-01-01T08:00:00+00:00"),
                ts("2026-01-01T10:00:00+00:00"),
                None,
                "r1",
                RUN_1,
                "o/a",
                1,
            ),
            (
                3,
                "C1",
                "paid",
                Decimal("10.50"),
                "EUR",
                ts("2026-01-01T08:00:00+00:00"),
                ts("2026-01-01T12:00:00+00:00"),
                '[{"sku":"A"}]',
                "r1",
                RUN_1,
                "o/b",
                2,
            ),
        ],
        ORDER_SCHEMA + ", line_number INT",
    )
    assert_df_equality(
        accepted_orders(validated), expected_accepted, ignore_row_order=True, ignore_nullable=True
    )

    fixed_time = F.lit(RUN_2).cast("timestamp")
    expected_quarantine = spark.createDataFrame(
        [
            ('"just text"', "not_an_object", "o/a", 2, "r1", RUN_1, RUN_2),
            (rows[2][0], "invalid_status", "o/b", 1, "r1", RUN_1, RUN_2),
        ],
        "raw_record STRING, reason STRING, source_object STRING, line_number INT, ingestion_run_id STRING, "
        "ingested_at TIMESTAMP, quarantined_at TIMESTAMP",
    )
    assert_df_equality(
        quarantined_records(validated, fixed_time),
        expected_quarantine,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_latest_version_wins_and_ties_go_to_the_first_received(spark: SparkSession) -> None:
    rows = [
        # order 1: three versions, the newest in the middle of the batch
        (order(1, "2026-01-01T10:00:00Z", "placed"), "o/a", 1, "r1", RUN_1),
        (order(1, "2026-01-01T12:00:00Z", "shipped"), "o/a", 2, "r1", RUN_1),
        (order(1, "2026-01-01T11:00:00Z", "paid"), "o/b", 1, "r2", RUN_2),
        # order 2: two different versions with the same updated_at, in two runs
        (order(2, "2026-01-01T10:00:00Z", "cancelled"), "o/c", 1, "r2", RUN_2),
        (order(2, "2026-01-01T10:00:00Z", "paid"), "o/a", 3, "r1", RUN_1),
        # order 3: the same updated_at twice in one object
        (order(3, "2026-01-01T10:00:00Z", "delivered"), "o/a", 5, "r1", RUN_1),
        (order(3, "2026-01-01T10:00:00Z", "refunded"), "o/a", 4, "r1", RUN_1),
    ]
    latest = latest_versions(accepted_orders(validate_orders(raw(spark, rows))))
    assert sorted((r.order_id, r.status, r.ingestion_run_id, r.source_object) for r in latest.collect()) == [
        (1, "shipped", "r1", "o/a"),
        (2, "paid", "r1", "o/a"),
        (3, "refunded", "r1", "o/a"),
    ]
    assert latest.columns == ORDER_SCHEMA_NAMES


def test_validation_of_an_empty_batch_is_empty(spark: SparkSession) -> None:
    validated = validate_orders(raw(spark, []))
    assert validated.count() == 0
    assert "reason" in validated.columns


def test_a_rule_that_raises_quarantines_its_record_and_validation_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    valid = order(1, "2026-01-01T10:00:00Z")

    def fragile(text: str) -> object:
        if text == "boom":
            raise ZeroDivisionError("a bug in a rule")
        return parse_record(text)

    monkeypatch.setattr(records, "parse_record", fragile)
    batch = pa.RecordBatch.from_pydict({"raw_record": ["boom", valid]})
    [checked] = list(records.check_batches(ORDERS)([batch]))
    assert checked.column("reason").to_pylist() == ["check_failed", None]
    assert checked.column("order_id").to_pylist() == [None, 1]


def test_each_record_carries_the_names_of_its_fields_the_dataset_does_not_know(spark: SparkSession) -> None:
    lines = [
        order(1, "2026-01-01T10:00:00Z", channel="web", coupon=None),  # valid
        order("x", "2026-01-01T10:00:00Z", channel="app"),  # invalid, still counted
        '{"channel": "x", "channel": "y"}',  # a field given twice: rejected, carried once
        '{"chan\\u006eel": 1, "": 2, "\\ud800": 3}',  # escaped names are the names they spell
        '{"items": [{"gift": true}], "order_id": {"nested": 1}}',  # nested fields are not top-level
        '"not an object"',
        '[{"channel": 1}]',
        "{",
        "base64:" + base64.b64encode(b'{"channel": "web", "\\xff": 1}').decode(),  # raw bytes: none
        '{"deep": ' + "[" * 70 + "]" * 70 + "}",  # nests too deep to parse: none
        "{}",
    ]
    rows = [(line, "o", n, "r1", RUN_1) for n, line in enumerate(lines, start=1)]

    validated = validate_orders(raw(spark, rows)).orderBy("line_number")

    carried = [row.unknown_fields for row in validated.collect()]
    assert carried == [
        ["channel", "coupon"],
        ["channel"],
        ["channel"],
        ["channel", "", "?"],
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    counted: dict[str, int] = {}
    for names in carried:
        for name in names or ():
            counted[name] = counted.get(name, 0) + 1
    # The reference reads the record nested too deep, and keeps a lone surrogate that Spark cannot hold.
    plain = unknown_fields([line for line in lines if not line.startswith('{"deep"')])
    plain["?"] = plain.pop("\ud800")
    assert counted == plain
