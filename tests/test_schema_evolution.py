"""Schema evolution on real Iceberg tables: what is applied before a write, what is refused, and the
source's unknown fields counted per run."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.catalog import Catalog
from pyspark.sql.types import (
    DataType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    _parse_datatype_string,
)

from datasets.gold.customer_summary import MODEL as CUSTOMER_SUMMARY
from datasets.orders import DATASET as ORDERS
from etl import pipeline, registry
from etl.bronze.layout import BronzeLayout, read_watermark
from etl.catalog import table_identifier
from etl.gold import job as gold
from etl.silver import job as silver
from etl.silver.job import SilverSummary
from etl.silver.records import RAW_SCHEMA, validate_records
from etl.spark.jobs import ensure_tables
from etl.spark.schema_evolution import (
    SchemaChangeRefused,
    definition_schema,
    forget_tables,
    is_widening,
    plan_changes,
)
from etl.storage import LocalStore
from etl.tables import SILVER_INGESTION_RUNS, Column, Layer, TableDefinition
from local.report import run_summary
from local.runner import PipelineRun, StepRun
from tests import reference
from tests.test_silver_job import Lake, order

pytestmark = pytest.mark.spark

GOLD_CUSTOMER_SUMMARY = CUSTOMER_SUMMARY.table
SILVER_ORDERS = ORDERS.silver_table
SILVER_ORDERS_QUARANTINE = ORDERS.quarantine_table
SILVER_TABLES = (
    SILVER_ORDERS,
    SILVER_ORDERS_QUARANTINE,
    SILVER_INGESTION_RUNS,
)  # what Silver on orders writes

RUN_0 = datetime(2026, 1, 15, tzinfo=UTC)


def without(table: TableDefinition, *names: str) -> TableDefinition:
    """The table as it was defined before these columns were added."""
    return replace(table, columns=tuple(c for c in table.columns if c.name not in names))


def create(spark: SparkSession, database: str, table: TableDefinition) -> str:
    identifier = table_identifier(database, table.name)
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {identifier.rsplit('.', 1)[0]}")
    spark.sql(table.create_sql(identifier))
    return identifier


def schema_ddl(table: TableDefinition) -> str:
    return ", ".join(f"{c.name} {c.type}" for c in table.columns)


def types(spark: SparkSession, identifier: str) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in spark.table(identifier).schema.fields}


# -- the plan: plain Python -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "wanted", "allowed"),
    [
        (IntegerType(), LongType(), True),
        (FloatType(), DoubleType(), True),
        (DecimalType(10, 2), DecimalType(12, 2), True),
        (LongType(), IntegerType(), False),
        (DoubleType(), FloatType(), False),
        (DecimalType(12, 2), DecimalType(10, 2), False),
        (DecimalType(12, 2), DecimalType(14, 3), False),
        (IntegerType(), StringType(), False),
        (StringType(), LongType(), False),
    ],
)
def test_only_the_widenings_iceberg_allows_are_widenings(
    stored: DataType, wanted: DataType, allowed: bool
) -> None:
    assert is_widening(stored, wanted) is allowed


def test_the_plan_applies_what_iceberg_can_and_refuses_the_rest() -> None:
    from pyspark.sql.types import StructField, StructType

    def field(name: str, data_type: DataType, nullable: bool = True, comment: str = "c") -> StructField:
        return StructField(name, data_type, nullable, {"comment": comment})

    stored = StructType(
        [
            field("id", IntegerType(), nullable=False),
            field("gone", StringType()),
            field("amount", DecimalType(12, 2)),
            field("note", StringType()),
            field("code", StringType()),
        ]
    )
    wanted = StructType(
        [
            field("id", LongType()),
            field("amount", DecimalType(10, 2)),
            field("note", StringType(), comment="new words"),
            field("code", StringType(), nullable=False),
            field("added", StringType()),
            field("required", StringType(), nullable=False),
        ]
    )
    changes = plan_changes("t", wanted, stored)

    assert [(c.column, c.description, c.sql) for c in changes] == [
        ("gone", "dropped or renamed: the table has it, the definition does not", None),
        ("id", "type int to bigint", "ALTER TABLE t ALTER COLUMN id TYPE bigint"),
        ("id", "made optional", "ALTER TABLE t ALTER COLUMN id DROP NOT NULL"),
        ("amount", "type decimal(12,2) to decimal(10,2): not a widening Iceberg allows", None),
        ("note", "comment changed", "ALTER TABLE t ALTER COLUMN note COMMENT 'new words'"),
        ("code", "made required: stored rows may hold nulls", None),
        ("added", "added as string", "ALTER TABLE t ADD COLUMN added string COMMENT 'c' AFTER code"),
        ("required", "added as required: the stored rows have no value for it", None),
    ]


# -- on real Iceberg tables -------------------------------------------------------------------------


def test_a_column_added_to_a_silver_definition_reads_null_in_older_rows_and_is_merged_into_new_ones(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    # Tables created before `items` (orders) and `dataset`, `unknown_fields` (the ledger) were defined.
    old_orders, old_ledger = (
        without(SILVER_ORDERS, "items"),
        without(SILVER_INGESTION_RUNS, "dataset", "unknown_fields"),
    )
    orders = create(spark, lake.database, old_orders)
    ledger = create(spark, lake.database, old_ledger)
    create(spark, lake.database, SILVER_ORDERS_QUARANTINE)
    stored_at = datetime(2026, 1, 1, 1, tzinfo=UTC)
    spark.createDataFrame(
        [
            (n, f"C{n}", "placed", Decimal("10.00"), "EUR", stored_at, stored_at, "r0", RUN_0, "o/0")
            for n in (1, 2)
        ],
        schema_ddl(old_orders),
    ).writeTo(orders).append()
    spark.createDataFrame([("r0", "m/r0", RUN_0, 2, 2, 0, RUN_0)], schema_ddl(old_ledger)).writeTo(
        ledger
    ).append()

    def with_fields(text: str, **fields: Any) -> str:
        return json.dumps({**json.loads(text), **fields})

    received = [
        with_fields(order(1, "2026-01-01T05:00:00Z", status="paid"), items=[{"sku": "A"}], channel="web"),
        with_fields(order(3, "2026-01-01T06:00:00Z"), items=[], channel="phone", coupon="X"),
        with_fields(order(4, "2026-01-01T06:00:00Z", status="lost"), channel="web"),  # quarantined: counts
        '"not an object"',
    ]
    lake.land("r1", received)
    summary = lake.merge()

    assert summary.schema_changes == (
        f"{orders}: column items added as string",
        f"{ledger}: column dataset added as string",
        f"{ledger}: column unknown_fields added as map<string,bigint>",
    )
    assert tuple(spark.table(orders).columns) == SILVER_ORDERS.column_names  # placed as defined
    stored = spark.table(orders).collect()
    assert sorted((r.order_id, r.status, r.items, r.ingestion_run_id) for r in stored) == [
        (1, "paid", '[{"sku":"A"}]', "r1"),
        (2, "placed", None, "r0"),  # stored before the column existed
        (3, "placed", "[]", "r1"),
    ]
    runs = {r.run_id: (r.dataset, r.unknown_fields) for r in spark.table(ledger).collect()}
    assert runs == {"r0": (None, None), "r1": ("orders", reference.unknown_fields(received))}
    assert runs["r1"][1] == {"channel": 3, "coupon": 1}
    assert summary.unknown_fields == {"channel": 3, "coupon": 1}


def test_a_column_added_to_a_gold_definition_reads_null_then_the_rebuild_fills_it(
    spark: SparkSession,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    silver_db, gold_db = f"silver_{suffix}", f"gold_{suffix}"
    ensure_tables(spark, silver_db, registry.silver_tables())  # Gold reads orders and customers
    first, last = datetime(2026, 1, 1, 8, tzinfo=UTC), datetime(2026, 1, 3, 9, tzinfo=UTC)
    spark.createDataFrame(
        [
            (1, "A", "paid", Decimal("10.00"), "EUR", first, first, None, "r1", RUN_0, "o/1"),
            (2, "A", "placed", Decimal("5.00"), "EUR", last, last, None, "r1", RUN_0, "o/1"),
        ],
        schema_ddl(SILVER_ORDERS),
    ).writeTo(table_identifier(silver_db, "orders")).append()
    # As it was before the customers dataset (and before last_order_at).
    old_summary = without(GOLD_CUSTOMER_SUMMARY, "last_order_at", "country", "segment")
    summary_table = create(spark, gold_db, old_summary)
    spark.createDataFrame([("Z", 1, Decimal("1.00"), first)], schema_ddl(old_summary)).writeTo(
        summary_table
    ).append()

    applied = ensure_tables(spark, gold_db, [GOLD_CUSTOMER_SUMMARY])

    assert applied == [
        f"{summary_table}: column last_order_at added as timestamp",
        f"{summary_table}: column country added as string",
        f"{summary_table}: column segment added as string",
    ]
    assert [(r.customer_id, r.last_order_at, r.country) for r in spark.table(summary_table).collect()] == [
        ("Z", None, None)
    ]

    gold.run(spark, gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db]))

    rows = spark.table(summary_table).collect()
    assert [(r.customer_id, r.orders, r.first_order_at, r.last_order_at) for r in rows] == [
        ("A", 2, first.replace(tzinfo=None), last.replace(tzinfo=None))
    ]


MEASURES = TableDefinition(
    layer=Layer.SILVER,
    name="measures",
    comment="A table whose types widen",
    columns=(
        Column("id", "INT", "Key"),
        Column("ratio", "FLOAT", "A ratio"),
        Column("amount", "DECIMAL(10,2)", "An amount"),
    ),
)


def test_a_widened_type_is_applied_and_keeps_the_stored_values(spark: SparkSession) -> None:
    database = f"silver_{uuid.uuid4().hex[:8]}"
    identifier = create(spark, database, MEASURES)
    spark.createDataFrame([(1, 0.5, Decimal("12345678.91"))], schema_ddl(MEASURES)).writeTo(
        identifier
    ).append()
    widened = replace(
        MEASURES,
        columns=(
            Column("id", "BIGINT", "Key"),
            Column("ratio", "DOUBLE", "A ratio"),
            Column("amount", "DECIMAL(14,2)", "An amount"),
        ),
    )

    applied = ensure_tables(spark, database, [widened])

    assert applied == [
        f"{identifier}: column id type int to bigint",
        f"{identifier}: column ratio type float to double",
        f"{identifier}: column amount type decimal(10,2) to decimal(14,2)",
    ]
    assert types(spark, identifier) == {"id": "bigint", "ratio": "double", "amount": "decimal(14,2)"}
    big = (2**40, 0.1, Decimal("123456789012.34"))
    spark.createDataFrame([big], schema_ddl(widened)).writeTo(identifier).append()
    assert sorted(tuple(r) for r in spark.table(identifier).collect()) == [
        (1, 0.5, Decimal("12345678.91")),
        big,
    ]


def test_a_refused_change_writes_nothing_and_the_waiting_run_is_merged_after_the_migration(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    lake.land("r1", [order(1, "2026-01-01T05:00:00Z")])
    lake.merge()
    orders = table_identifier(lake.database, "orders")
    ledger = table_identifier(lake.database, "ingestion_runs")
    # The table has a column its definition no longer has (dropped or renamed in the definition), and
    # the ledger lacks one (an additive change, which must wait too: nothing is altered on a refusal).
    spark.sql(f"ALTER TABLE {orders} ADD COLUMN coupon STRING")
    spark.sql(f"ALTER TABLE {ledger} DROP COLUMN unknown_fields")
    tables = [table_identifier(lake.database, t.name) for t in SILVER_TABLES]
    forget_tables(spark, tables)  # as the next job's own session: nothing checked yet
    lake.land(
        "r2", [order(1, "2026-01-02T05:00:00Z", status="paid"), order(2, "2026-01-02T05:00:00Z")], day=2
    )
    store, layout = LocalStore(Path(lake.bronze)), BronzeLayout("orders")
    watermark = read_watermark(store, layout)

    def state() -> dict[str, Any]:
        return {
            t: (types(spark, t), [r.snapshot_id for r in spark.sql(f"SELECT * FROM {t}.snapshots").collect()])
            for t in tables
        }

    before = state()
    with pytest.raises(SchemaChangeRefused) as refused:
        lake.merge()

    assert str(refused.value) == (
        f"{orders}: column coupon dropped or renamed: the table has it, the definition does not. Nothing "
        'was written: change the definition back, or migrate the table by hand as the README section "Change '
        'a schema" explains'
    )
    assert state() == before
    assert read_watermark(store, layout) == watermark
    assert [r.run_id for r in spark.table(ledger).collect()] == ["r1"]

    # The migration by hand the README describes for a dropped column; the run waiting in Bronze follows.
    spark.sql(f"ALTER TABLE {orders} DROP COLUMN coupon")
    forget_tables(spark, tables)
    merged = lake.merge()

    assert merged.runs == ("r2",)
    assert merged.schema_changes == (f"{ledger}: column unknown_fields added as map<string,bigint>",)
    assert [(o[0], o[1]) for o in lake.orders()] == [(1, "paid"), (2, "placed")]


def test_a_table_reconciled_in_this_session_costs_no_catalog_round_trip(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"silver_{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, database, SILVER_TABLES)
    calls: list[str] = []
    for owner, name in ((SparkSession, "sql"), (SparkSession, "table"), (Catalog, "tableExists")):
        monkeypatch.setattr(owner, name, lambda *args, _name=name, **kwargs: calls.append(_name))

    assert ensure_tables(spark, database, SILVER_TABLES) == []
    assert calls == []


def test_unknown_fields_are_counted_per_run_exactly_as_a_plain_count_of_the_records(
    spark: SparkSession,
) -> None:
    raw_object = "base64:" + base64.b64encode(b'{"channel": "web", "\xff": 1}').decode()
    runs = {
        "a": [
            '{"order_id": 1, "channel": "web", "coupon": null}',
            '{"channel": "x", "channel": "y"}',  # given twice: one record carries it
            '{"chan\\u006eel": 1, "": 2}',  # escaped key names are the names they spell
            '{"items": [{"gift": true}], "order_id": {"nested": 1}}',  # nested fields are not top-level
            '"not an object"',
            '[{"channel": 1}]',
            raw_object,  # kept as raw bytes: no fields
            "{}",
        ],
        "b": ['{"order_id": 2}', '{"Channel": 1}'],
        "c": ['{"order_id": 3}'],
    }
    raw = spark.createDataFrame(
        [(line, "o", n, run, None) for run, lines in runs.items() for n, line in enumerate(lines, start=1)],
        RAW_SCHEMA,
    )

    counted: dict[str, dict[str, int]] = {}
    for row in validate_records(raw, ORDERS).collect():
        for name in row.unknown_fields or ():
            fields = counted.setdefault(row.ingestion_run_id, {})
            fields[name] = fields.get(name, 0) + 1

    plain = {run: reference.unknown_fields(lines) for run, lines in runs.items()}
    assert counted == {run: fields for run, fields in plain.items() if fields}
    assert counted == {"a": {"channel": 3, "coupon": 1, "": 1}, "b": {"Channel": 1}}


def test_the_run_summary_prints_the_unknown_fields_and_the_schema_changes() -> None:
    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    ingestion = {"records": 9, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": False}
    silver = SilverSummary(
        runs=("r",),
        records=9,
        unknown_fields={"channel": 7, "coupon": 1},
        schema_changes=("x: column y added",),
    )
    run.steps += [
        StepRun(pipeline.BRONZE, 1.0, ingestion),
        StepRun(pipeline.SILVER, 1.0, silver),
        StepRun(pipeline.GOLD, 1.0, gold.GoldSummary(rows={"daily_sales": 3})),
    ]

    summary = run_summary(run)

    assert re.search(
        r"\nrecords read by Silver +9\n  unknown field channel +7\n  unknown field coupon +1\n", summary
    )
    assert "x: column y added; merged r" in summary


def test_runs_merged_before_the_ledger_named_their_dataset_are_known_by_their_manifest(
    spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(spark, tmp_path)
    old_ledger = without(SILVER_INGESTION_RUNS, "dataset", "unknown_fields")
    ledger = create(spark, lake.database, old_ledger)
    manifest = f"{lake.bronze}/{BronzeLayout('orders').manifest_key('r0')}"
    spark.createDataFrame([("r0", manifest, RUN_0, 2, 2, 0, RUN_0)], schema_ddl(old_ledger)).writeTo(
        ledger
    ).append()
    # The ledger lists an orders run, but silver.orders is gone: replaying is the only way back.
    with pytest.raises(silver.SilverTableMissing, match="orders is missing"):
        lake.merge()
    # No run of customers was ever merged: its tables are simply created.
    customers = silver.run(
        spark,
        silver.parse_args(
            ["--bronze-root", lake.bronze, "--silver-database", lake.database, "--dataset", "customers"]
        ),
    )
    assert customers.runs == ()
    assert spark.catalog.tableExists(table_identifier(lake.database, "customers"))


def test_a_definition_parses_to_the_types_of_its_columns_parsed_one_by_one(spark: SparkSession) -> None:
    tables = [*registry.silver_tables(), *(model.table for model in registry.gold_models())]
    nested = TableDefinition(
        Layer.SILVER,
        "t",
        "c",
        (
            Column("items", "ARRAY<STRUCT<sku: STRING, `from`: DECIMAL(12,2)>>", "i", nullable=False),
            Column("tags", "MAP<STRING, BIGINT>", "m"),
            Column("select", "DATE", "a keyword as a name"),
        ),
    )
    for table in (*tables, nested):
        schema = definition_schema(table)
        assert [(f.name, f.nullable, f.metadata) for f in schema.fields] == [
            (c.name, c.nullable, {"comment": c.comment}) for c in table.columns
        ]
        assert [f.dataType for f in schema.fields] == [_parse_datatype_string(c.type) for c in table.columns]
