"""The Gold job: its SQL against a real Iceberg silver.orders, one commit per table."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from datasets.gold.customer_summary import MODEL as CUSTOMER_SUMMARY
from datasets.gold.daily_sales import MODEL as DAILY_SALES
from datasets.orders import DATASET as ORDERS
from etl import registry
from etl.gold import job as gold
from etl.spark.branches import branch_snapshots, publish
from etl.spark.jobs import ensure_tables
from tests.spark_jobs import spark_jobs

GOLD_CUSTOMER_SUMMARY = CUSTOMER_SUMMARY.table
GOLD_DAILY_SALES = DAILY_SALES.table
SILVER_ORDERS = ORDERS.silver_table
SILVER_TABLES = registry.silver_tables()

pytestmark = pytest.mark.spark

RUN = datetime(2026, 2, 1, tzinfo=UTC)


def silver_row(
    order_id: int, customer: str, status: str, amount: str, currency: str, created: str
) -> tuple[object, ...]:
    created_at = datetime.fromisoformat(created)
    return (
        order_id,
        customer,
        status,
        Decimal(amount),
        currency,
        created_at,
        created_at,
        None,
        "r1",
        RUN,
        "o/1",
    )


@pytest.fixture
def databases(spark: SparkSession) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    silver_db, gold_db = f"silver_{suffix}", f"gold_{suffix}"
    ensure_tables(spark, silver_db, SILVER_TABLES)
    rows = [
        silver_row(1, "A", "paid", "10.00", "EUR", "2026-01-01T23:30:00+00:00"),
        silver_row(2, "A", "shipped", "5.50", "EUR", "2026-01-01T08:00:00+00:00"),
        silver_row(3, "B", "cancelled", "7.00", "EUR", "2026-01-01T09:00:00+00:00"),
        silver_row(4, "B", "refunded", "3.25", "USD", "2026-01-01T10:00:00+00:00"),
        silver_row(5, "C", "placed", "99.99", "EUR", "2026-01-02T00:00:00+00:00"),
        silver_row(6, "A", "delivered", "1.00", "EUR", "2026-01-02T00:30:00+00:00"),
    ]
    schema = ", ".join(f"{c.name} {c.type}" for c in SILVER_ORDERS.columns)
    spark.createDataFrame(rows, schema).writeTo(f"{silver_db}.orders").append()
    # Only customer A is known: B and C get a null country and segment.
    known = datetime(2025, 12, 1, tzinfo=UTC)
    customer = ("A", "Ada", None, "DE", "business", known, known, "r1", RUN, "c/1")
    customers = registry.dataset("customers").silver_table
    customers_schema = ", ".join(f"{c.name} {c.type}" for c in customers.columns)
    spark.createDataFrame([customer], customers_schema).writeTo(f"{silver_db}.customers").append()
    return silver_db, gold_db


def assert_table_holds(spark: SparkSession, table: str, expected: DataFrame) -> None:
    """The table holds the expected rows, in any order."""
    assert_df_equality(
        spark.table(table), expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True
    )


def test_builds_daily_sales_and_customer_summary(spark: SparkSession, databases: tuple[str, str]) -> None:
    silver_db, gold_db = databases
    summary = gold.run(spark, gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db]))

    daily_schema = ", ".join(f"{c.name} {c.type}" for c in GOLD_DAILY_SALES.columns)
    expected_daily = spark.createDataFrame(
        [
            (date(2026, 1, 1), "EUR", 3, Decimal("15.50"), 1, Decimal("0.00")),
            (date(2026, 1, 1), "USD", 1, Decimal("0.00"), 0, Decimal("3.25")),
            (date(2026, 1, 2), "EUR", 2, Decimal("1.00"), 0, Decimal("0.00")),
        ],
        daily_schema,
    )
    assert_table_holds(spark, f"{gold_db}.daily_sales", expected_daily)

    customer_schema = ", ".join(f"{c.name} {c.type}" for c in GOLD_CUSTOMER_SUMMARY.columns)
    ts = datetime.fromisoformat
    expected_customers = spark.createDataFrame(
        [
            (
                "A",
                3,
                Decimal("16.50"),
                ts("2026-01-01T08:00:00+00:00"),
                ts("2026-01-02T00:30:00+00:00"),
                "DE",
                "business",
            ),
            (
                "B",
                2,
                Decimal("0.00"),
                ts("2026-01-01T09:00:00+00:00"),
                ts("2026-01-01T10:00:00+00:00"),
                None,
                None,
            ),
            (
                "C",
                1,
                Decimal("0.00"),
                ts("2026-01-02T00:00:00+00:00"),
                ts("2026-01-02T00:00:00+00:00"),
                None,
                None,
            ),
        ],
        customer_schema,
    )
    assert_table_holds(spark, f"{gold_db}.customer_summary", expected_customers)
    by_country = {tuple(row) for row in spark.table(f"{gold_db}.sales_by_country").collect()}
    assert by_country == {
        ("DE", "EUR", 3, Decimal("16.50")),
        (None, "EUR", 2, Decimal("0.00")),
        (None, "USD", 1, Decimal("0.00")),
    }
    assert summary.rows == {"daily_sales": 3, "customer_summary": 3, "sales_by_country": 3}


def test_each_rebuild_is_one_commit_per_table_and_replaces_the_rows(
    spark: SparkSession, databases: tuple[str, str]
) -> None:
    silver_db, gold_db = databases
    args = gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db, "--JOB_ID", "j_1"])
    gold.run(spark, args)
    spark.sql(f"DELETE FROM {silver_db}.orders WHERE customer_id = 'C'")

    summary = gold.run(spark, args)

    for table in ("daily_sales", "customer_summary"):
        operations = [
            r.operation for r in spark.sql(f"SELECT operation FROM {gold_db}.{table}.snapshots").collect()
        ]
        assert len(operations) == 2  # one commit per rebuild
    assert summary.rows == {"daily_sales": 3, "customer_summary": 2, "sales_by_country": 3}
    jan_2 = spark.sql(
        f"SELECT orders FROM {gold_db}.daily_sales WHERE order_date = DATE'2026-01-02'"
    ).collect()
    assert [row.orders for row in jan_2] == [1]


def test_fails_clearly_when_silver_does_not_exist_yet(spark: SparkSession) -> None:
    args = gold.parse_args(["--silver-database", "silver_nowhere", "--gold-database", "gold_nowhere"])
    with pytest.raises(gold.SilverMissing, match="run the Silver job first"):
        gold.run(spark, args)


def test_the_sql_reads_only_the_silver_view(spark: SparkSession) -> None:
    for model in (DAILY_SALES, CUSTOMER_SUMMARY):
        sql = registry.gold_sql(model)
        assert "FROM silver_orders" in sql
        assert "lakehouse." not in sql


def test_a_run_with_silver_unchanged_keeps_every_table_and_a_change_rebuilds_what_reads_it(
    spark: SparkSession, databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    silver_db, gold_db = databases
    args = gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db])
    first = gold.run(spark, args)

    def commits() -> dict[str, int]:
        return {t: spark.sql(f"SELECT * FROM {gold_db}.{t}.snapshots").count() for t in first.rows}

    built = commits()
    unchanged = gold.run(spark, args)
    assert first.up_to_date == ()
    assert sorted(unchanged.up_to_date) == ["customer_summary", "daily_sales", "sales_by_country"]
    assert unchanged.rows == first.rows and commits() == built

    # A changed SQL file rebuilds its table (and only it), even with Silver unchanged.
    sql = registry.gold_sql
    monkeypatch.setattr(
        registry, "gold_sql", lambda model: sql(model) + ("\n-- changed" if model is DAILY_SALES else "")
    )
    changed_sql = gold.run(spark, args)
    assert sorted(changed_sql.up_to_date) == ["customer_summary", "sales_by_country"]
    assert commits() == {**built, "daily_sales": built["daily_sales"] + 1}

    # Customers change: the tables that read them are rebuilt, daily_sales reads only orders.
    spark.sql(f"UPDATE {silver_db}.customers SET country = 'FR'")
    after = gold.run(spark, args)
    assert after.up_to_date == ("daily_sales",)
    countries = {row.country for row in spark.table(f"{gold_db}.sales_by_country").collect()}
    assert "FR" in countries and "DE" not in countries


def test_a_model_whose_sql_does_not_compile_is_named_and_nothing_is_written(
    spark: SparkSession, databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    silver_db, gold_db = databases
    args = gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db, "--branch", "run-1"])
    sql = registry.gold_sql
    broken = {CUSTOMER_SUMMARY.table.name: " GROUP BY"}  # a dangling GROUP BY: a syntax error
    monkeypatch.setattr(registry, "gold_sql", lambda model: sql(model) + broken.get(model.table.name, ""))
    named = r"gold\.customer_summary \(datasets/gold/customer_summary\.sql\) failed: \[PARSE_SYNTAX_ERROR\]"
    with pytest.raises(gold.GoldModelFailed, match=named):
        gold.run(spark, args)
    for table in ("daily_sales", "customer_summary", "sales_by_country"):
        assert spark.sql(f"SELECT * FROM {gold_db}.{table}.snapshots").count() == 0
        assert branch_snapshots(spark, f"{gold_db}.{table}") == {}  # not even the run's branch


def test_a_model_failing_as_it_is_written_leaves_the_others_written_and_the_next_run_builds_only_it(
    spark: SparkSession, databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    silver_db, gold_db = databases
    args = gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db])
    sql = registry.gold_sql
    # Planned without error; fails on the executors, while the other models are being written.
    broken = "SELECT * FROM ({}) WHERE raise_error('daily_sales broke') IS NULL"
    monkeypatch.setattr(
        registry, "gold_sql", lambda model: broken.format(sql(model)) if model is DAILY_SALES else sql(model)
    )
    named = (
        r"gold\.daily_sales \(datasets/gold/daily_sales\.sql\) failed \(the others written: "
        r"gold\.customer_summary, gold\.sales_by_country\): .*daily_sales broke"
    )
    with pytest.raises(gold.GoldModelFailed, match=named):
        gold.run(spark, args)
    assert spark.table(f"{gold_db}.customer_summary").count() == 3
    assert spark.table(f"{gold_db}.sales_by_country").count() == 3
    assert spark.sql(f"SELECT * FROM {gold_db}.daily_sales.snapshots").count() == 0

    monkeypatch.setattr(registry, "gold_sql", sql)
    fixed = gold.run(spark, args)
    assert sorted(fixed.up_to_date) == ["customer_summary", "sales_by_country"]
    assert fixed.rows == {"daily_sales": 3, "customer_summary": 3, "sales_by_country": 3}


def test_on_a_branch_only_a_rebuilt_table_gets_the_branch_and_a_kept_one_costs_no_spark_job(
    spark: SparkSession, databases: tuple[str, str]
) -> None:
    silver_db, gold_db = databases
    options = ["--silver-database", silver_db, "--gold-database", gold_db]
    gold.run(spark, gold.parse_args(options))
    spark.sql(f"UPDATE {silver_db}.customers SET country = 'FR'")

    changed = gold.run(spark, gold.parse_args([*options, "--branch", "run-2"]))

    assert changed.up_to_date == ("daily_sales",)
    assert "run-2" not in branch_snapshots(spark, f"{gold_db}.daily_sales")
    for table in ("customer_summary", "sales_by_country"):
        assert "run-2" in branch_snapshots(spark, f"{gold_db}.{table}")
        on_branch = spark.sql(f"SELECT * FROM {gold_db}.{table} VERSION AS OF 'run-2'").count()
        assert changed.rows[table] == on_branch  # counted from the commit's summary

    # Published (as the Audit step does), the tables are up to date on the next run's branch.
    assert [publish(spark, gold_db, table, "run-2") for table in sorted(changed.rows)] == [True, False, True]
    with spark_jobs(spark) as jobs:
        kept = gold.run(spark, gold.parse_args([*options, "--branch", "run-3"]))
    assert sorted(kept.up_to_date) == ["customer_summary", "daily_sales", "sales_by_country"]
    assert kept.rows == changed.rows
    assert jobs == []
    assert not any("run-3" in branch_snapshots(spark, f"{gold_db}.{table}") for table in kept.rows)


# What gold.customer_summary stands for, written the plain way: every order joined to its customer, then
# grouped (the model aggregates the orders first, which gives the same rows: see its SQL).
EVERY_ORDER_JOINED_FIRST = """
SELECT
    o.customer_id,
    COUNT(*) AS orders,
    COALESCE(SUM(CASE WHEN o.status IN ('paid', 'shipped', 'delivered') THEN o.amount END), 0)
        AS lifetime_value,
    MIN(o.created_at) AS first_order_at,
    MAX(o.created_at) AS last_order_at,
    MAX(c.country) AS country,
    MAX(c.segment) AS segment
FROM {silver}.orders AS o
LEFT JOIN {silver}.customers AS c ON c.customer_id = o.customer_id
GROUP BY o.customer_id
"""


def test_customer_summary_equals_every_order_joined_to_its_customer_then_grouped(
    spark: SparkSession, databases: tuple[str, str]
) -> None:
    silver_db, gold_db = databases
    known = datetime(2025, 12, 1, tzinfo=UTC)
    customers = registry.dataset("customers").silver_table
    more = [
        ("B", "Bo", None, "FR", "consumer", known, known, "r1", RUN, "c/1"),
        ("Z", "Zed", None, "PL", "consumer", known, known, "r1", RUN, "c/1"),  # no orders: no row
    ]
    spark.createDataFrame(more, ", ".join(f"{c.name} {c.type}" for c in customers.columns)).writeTo(
        f"{silver_db}.customers"
    ).append()

    gold.run(spark, gold.parse_args(["--silver-database", silver_db, "--gold-database", gold_db]))

    plain = spark.sql(EVERY_ORDER_JOINED_FIRST.format(silver=silver_db))
    expected = plain.select(*(F.col(c.name).cast(c.type) for c in GOLD_CUSTOMER_SUMMARY.columns))
    assert_table_holds(spark, f"{gold_db}.customer_summary", expected)
    assert {row.customer_id for row in expected.collect()} == {"A", "B", "C"}
