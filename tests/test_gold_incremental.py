"""Incremental Gold against its oracle, the full rebuild: equal after every batch of Silver changes.

Each batch MERGEs random changes into real Iceberg Silver tables (orders that move date, currency or
customer, new orders, customers that change country, appear for orders that had none, or go), then runs
the Gold job twice: incrementally into one database, in full into another.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl import registry
from etl.dataset import GoldModel
from etl.gold import job as gold
from etl.spark.jobs import ensure_tables

pytestmark = pytest.mark.spark

ORDERS = registry.dataset("orders").silver_table
CUSTOMERS = registry.dataset("customers").silver_table
START = datetime(2026, 3, 1, tzinfo=UTC)
CURRENCIES = ("EUR", "USD", "GBP")
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
COUNTRIES = ("DE", "FR", "PL", None)


def schema(columns: tuple[object, ...]) -> str:
    return ", ".join(f"{c.name} {c.type}" for c in columns)  # type: ignore[attr-defined]


def order(rng: random.Random, order_id: int, version: datetime) -> tuple[object, ...]:
    created = START + timedelta(hours=rng.randrange(24 * 30))
    return (
        order_id,
        f"c{rng.randrange(12)}",  # c10 and c11 start without a Silver customer
        rng.choice(STATUSES),
        Decimal(rng.randrange(1, 10_000)) / 100,
        rng.choice(CURRENCIES),
        created,
        version,
        None,
        "r",
        version,
        "o/1",
    )


def customer(rng: random.Random, number: int, version: datetime) -> tuple[object, ...]:
    return (
        f"c{number}",
        f"n{number}",
        None,
        rng.choice(COUNTRIES),
        rng.choice(("business", "consumer")),
        START,
        version,
        "r",
        version,
        "c/1",
    )


def merge(spark: SparkSession, table: str, key: str, rows: list[tuple[object, ...]], columns: str) -> None:
    view = f"changes_{uuid.uuid4().hex[:8]}"
    spark.createDataFrame(rows, columns).createOrReplaceTempView(view)
    spark.sql(
        f"MERGE INTO {table} t USING {view} s ON t.{key} = s.{key} "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )


def change_silver(spark: SparkSession, silver_db: str, rng: random.Random, batch: int) -> None:
    version = START + timedelta(days=30 + batch)
    existing = sorted(r.order_id for r in spark.table(f"{silver_db}.orders").select("order_id").collect())
    changed = rng.sample(existing, k=min(len(existing), 6))
    new = range(1000 * batch, 1000 * batch + 5)
    merge(
        spark,
        f"{silver_db}.orders",
        "order_id",
        [order(rng, i, version) for i in [*changed, *new]],
        schema(ORDERS.columns),
    )
    people = rng.sample(range(12), k=3)  # may bring in c10 or c11, whose orders had no customer
    merge(
        spark,
        f"{silver_db}.customers",
        "customer_id",
        [customer(rng, n, version) for n in people],
        schema(CUSTOMERS.columns),
    )
    if batch % 3 == 0:  # Silver does not delete today; Gold stays exact if it ever does
        spark.sql(f"DELETE FROM {silver_db}.orders WHERE order_id = {rng.choice(existing)}")
        spark.sql(f"DELETE FROM {silver_db}.customers WHERE customer_id = 'c{rng.randrange(12)}'")


def assert_gold_equal(spark: SparkSession, incremental_db: str, full_db: str) -> None:
    for model in registry.gold_models():
        name = model.table.name
        assert_df_equality(
            spark.table(f"{incremental_db}.{name}"),
            spark.table(f"{full_db}.{name}"),
            ignore_row_order=True,
            ignore_nullable=True,
        )


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_incremental_gold_equals_the_full_rebuild_after_every_batch(
    spark: SparkSession, write_mode: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    silver_db, incremental_db, full_db = f"silver_{suffix}", f"gold_inc_{suffix}", f"gold_full_{suffix}"
    ensure_tables(spark, silver_db, registry.silver_tables())
    for table in ("orders", "customers"):
        modes = ", ".join(f"'write.{op}.mode' = '{write_mode}'" for op in ("merge", "update", "delete"))
        spark.sql(f"ALTER TABLE {silver_db}.{table} SET TBLPROPERTIES ({modes})")
    rng = random.Random(7)
    merge(
        spark,
        f"{silver_db}.orders",
        "order_id",
        [order(rng, i, START) for i in range(60)],
        schema(ORDERS.columns),
    )
    merge(
        spark,
        f"{silver_db}.customers",
        "customer_id",
        [customer(rng, n, START) for n in range(10)],
        schema(CUSTOMERS.columns),
    )

    def run(database: str, *refresh: str) -> gold.GoldSummary:
        argv = ["--silver-database", silver_db, "--gold-database", database, *refresh]
        return gold.run(spark, gold.parse_args(argv))

    first = run(incremental_db, "--refresh", "incremental")
    run(full_db)
    assert_gold_equal(spark, incremental_db, full_db)
    assert set(first.full_rebuilds.values()) == {"no earlier build recorded"}
    for batch in range(1, 5):
        change_silver(spark, silver_db, rng, batch)
        summary = run(incremental_db, "--refresh", "incremental")
        full = run(full_db)  # the default
        assert_gold_equal(spark, incremental_db, full_db)
        assert summary.full_rebuilds == {}, batch
        assert summary.rows == full.rows
        assert full.incremental == {} and full.full_rebuilds == {}
        if write_mode == "merge-on-read":
            # Only some rows were recomputed. (A copy-on-write MERGE rewrites whole files, so with data
            # this small every row counts as changed: still exact, see etl/gold/changes.py.)
            assert 0 < summary.incremental["daily_sales"] < summary.rows["daily_sales"], batch


def test_an_expired_snapshot_falls_back_to_a_full_rebuild_and_says_why(spark: SparkSession) -> None:
    suffix = uuid.uuid4().hex[:8]
    silver_db, gold_db = f"silver_{suffix}", f"gold_{suffix}"
    ensure_tables(spark, silver_db, registry.silver_tables())
    rng = random.Random(3)
    merge(
        spark,
        f"{silver_db}.orders",
        "order_id",
        [order(rng, i, START) for i in range(20)],
        schema(ORDERS.columns),
    )
    merge(
        spark,
        f"{silver_db}.customers",
        "customer_id",
        [customer(rng, n, START) for n in range(12)],
        schema(CUSTOMERS.columns),
    )
    args = gold.parse_args(
        ["--silver-database", silver_db, "--gold-database", gold_db, "--refresh", "incremental"]
    )
    gold.run(spark, args)
    change_silver(spark, silver_db, rng, 1)
    # Maintenance expires every snapshot but the current one: the change since the last build is gone.
    catalog = spark.sql("SELECT current_catalog()").first()[0]  # type: ignore[index]
    for table in ("orders", "customers"):
        spark.sql(
            f"CALL {catalog}.system.expire_snapshots(table => '{silver_db}.{table}', "
            f"older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)"
        )

    summary = gold.run(spark, args)

    assert summary.incremental == {}
    for table, reason in summary.full_rebuilds.items():
        assert "the Silver change cannot be read" in reason and "has expired" in reason, table
    assert set(summary.full_rebuilds) == {m.table.name for m in registry.gold_models()}
    full_db = f"gold_full_{suffix}"
    gold.run(spark, gold.parse_args(["--silver-database", silver_db, "--gold-database", full_db]))
    assert_gold_equal(spark, gold_db, full_db)


def test_a_model_declares_its_key_and_touched_sql_together_and_keys_are_columns() -> None:
    table = registry.gold_models()[0].table
    with pytest.raises(ValueError, match="declare both `key` and `touched`"):
        GoldModel(table=table, reads=("orders",), key=(table.columns[0].name,))
    with pytest.raises(ValueError, match=r"key columns \['nowhere'\] are not columns"):
        GoldModel(table=table, reads=("orders",), key=("nowhere",), touched="SELECT 1")
