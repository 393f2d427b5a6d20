"""Which Silver tables and columns a Gold run keeps for its rebuilds (etl/gold/shared_reads.py)."""

from __future__ import annotations

from etl import registry
from etl.gold.shared_reads import columns_named, shared_datasets

ORDERS = [c.name for c in registry.dataset("orders").silver_table.columns]


def test_only_the_columns_the_sql_names_are_kept_in_table_order() -> None:
    sql = "SELECT currency, COUNT(*) AS orders, SUM(amount) FROM silver_orders GROUP BY currency"
    assert columns_named([sql], ORDERS) == ("amount", "currency")


def test_every_model_sql_counts_and_names_are_matched_as_whole_words_in_any_case() -> None:
    texts = ["SELECT o.Customer_ID FROM silver_orders o", "SELECT MAX(created_at_utc) FROM t", ""]
    assert columns_named(texts, ORDERS) == ("customer_id",)


def test_a_star_other_than_count_or_a_natural_join_keeps_every_column() -> None:
    for sql in (
        "SELECT * FROM silver_orders",
        "SELECT o.*, 1 FROM silver_orders AS o",
        "SELECT COUNT(*) FROM silver_orders NATURAL JOIN silver_customers",
    ):
        assert columns_named([sql], ORDERS) == tuple(ORDERS), sql


def test_the_bundled_models_keep_a_fraction_of_silver_orders() -> None:
    readers = [m for m in registry.gold_models() if "orders" in m.reads]
    texts = [text for m in readers for text in (registry.gold_sql(m), m.touched or "")]
    assert columns_named(texts, ORDERS) == ("customer_id", "status", "amount", "currency", "created_at")


def test_a_dataset_is_shared_when_more_than_one_model_reads_it() -> None:
    reads = [("orders",), ("orders", "customers"), ("customers", "customers"), ("payments",)]
    assert shared_datasets(reads) == ["customers", "orders"]
    assert shared_datasets([("orders", "customers")]) == []
