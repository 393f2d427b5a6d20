"""`lakehouse query` runs only statements that read unless writes are allowed: decided on Spark's plan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from local.query import NotOneStatement, QueryFailed, WriteRefused, read_rows, refuse_writes

pytestmark = pytest.mark.spark

READS = [
    "SELECT 1",
    "select * from silver.orders where order_id = 1",
    "WITH recent AS (SELECT * FROM silver.orders) SELECT count(*) FROM recent",
    "SHOW TABLES IN silver",
    "SHOW TBLPROPERTIES silver.orders",
    "DESCRIBE silver.orders",
    "DESCRIBE NAMESPACE silver",
    "EXPLAIN DELETE FROM silver.orders",  # EXPLAIN shows the plan, it does not run it
    "TABLE gold.daily_sales",
    "VALUES (1, 2)",
    "SELECT * FROM silver.orders VERSION AS OF 1",
    "SELECT 1;",
]

WRITES = {
    "INSERT INTO silver.orders SELECT * FROM silver.orders": "InsertIntoStatement",
    "DELETE FROM silver.orders": "DeleteFromTable",
    "UPDATE silver.orders SET status = 'paid'": "UpdateTable",
    "MERGE INTO silver.orders t USING silver.orders s ON t.order_id = s.order_id WHEN MATCHED THEN DELETE": (
        "MergeIntoTable"
    ),
    "DROP TABLE silver.orders": "DropTable",
    "/* harmless */ drop table silver.orders": "DropTable",
    "TRUNCATE TABLE silver.orders": "TruncateTable",
    "CREATE TABLE silver.copy AS SELECT * FROM silver.orders": "CreateTableAsSelect",
    "ALTER TABLE silver.orders ADD PARTITION FIELD status": "AddPartitionField",
    "CALL lakehouse.system.rollback_to_snapshot('silver.orders', 1)": "CallStatement",
    "WITH x AS (SELECT 1) INSERT INTO silver.orders SELECT * FROM x": "InsertIntoStatement",
    "FROM silver.orders INSERT INTO silver.orders SELECT *": "InsertIntoStatement",
    "INSERT OVERWRITE DIRECTORY '/tmp/out' SELECT 1": "InsertIntoDir",
    "CACHE TABLE silver.orders": "CacheTable",
    "SET spark.sql.ansi.enabled = true": "SetCommand",
    "CREATE TEMPORARY VIEW v AS SELECT 1": "CreateViewCommand",
}


@pytest.mark.parametrize("sql", READS)
def test_statements_that_read_are_run(spark: SparkSession, sql: str) -> None:
    refuse_writes(spark, sql)


@pytest.mark.parametrize(("sql", "plan"), WRITES.items())
def test_statements_that_write_are_refused_naming_the_way_to_allow_them(
    spark: SparkSession, sql: str, plan: str
) -> None:
    with pytest.raises(WriteRefused) as refused:
        refuse_writes(spark, sql)
    assert str(refused.value) == (
        "lakehouse query only reads (SELECT, WITH, TABLE, VALUES, SHOW, DESCRIBE, EXPLAIN); its plan "
        f"({plan}) may write: add --allow-writes to run it (Bronze keeps every record: `lakehouse rebuild` "
        "restores tables)"
    )


@pytest.mark.parametrize("sql", ["SELECT 1; DROP TABLE silver.orders", "SELECT 1; SELECT 2", "SELEC 1"])
def test_anything_but_one_statement_is_refused(spark: SparkSession, sql: str) -> None:
    with pytest.raises(
        NotOneStatement, match="not one SQL statement Spark can read: \\[PARSE_SYNTAX_ERROR\\]"
    ):
        refuse_writes(spark, sql)


@pytest.fixture(scope="module")
def probe_table(spark: SparkSession) -> Iterator[str]:
    """An Iceberg table with one snapshot and a branch."""
    spark.sql("CREATE NAMESPACE IF NOT EXISTS query_probe")
    spark.sql("CREATE TABLE query_probe.t (id BIGINT) USING iceberg")
    spark.sql("INSERT INTO query_probe.t VALUES (1), (2)")
    spark.sql("ALTER TABLE query_probe.t CREATE BRANCH kept")
    yield "query_probe.t"
    spark.sql("DROP TABLE query_probe.t PURGE")


def test_a_query_gives_its_columns_and_rows(spark: SparkSession, probe_table: str) -> None:
    assert read_rows(
        spark, f"SELECT id, id * 2 AS twice FROM {probe_table} VERSION AS OF 'kept' ORDER BY id"
    ) == (
        ["id", "twice"],
        [(1, 2), (2, 4)],
    )


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (
            "VERSION AS OF 'gone'",
            "Cannot find matching snapshot ID or reference name for version gone: the table has no snapshot, "
            "branch or tag of that name (`SELECT * FROM <table>.refs` lists its branches and tags; a run's "
            "branch is dropped once it is published)",
        ),
        ("VERSION AS OF 12345", "Cannot find snapshot with ID 12345"),
        ("TIMESTAMP AS OF '2000-01-01'", "Cannot find a snapshot older than 2000-01-01T00:00:00+00:00"),
        ("WHERE missing = 1", "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or function parameter with name"),
    ],
)
def test_a_version_column_or_table_that_is_not_there_is_one_line_naming_it(
    spark: SparkSession, probe_table: str, tail: str, message: str
) -> None:
    with pytest.raises(QueryFailed) as failed:
        read_rows(spark, f"SELECT * FROM {probe_table} {tail}")
    assert str(failed.value).startswith(message)
    assert "\n" not in str(failed.value) and "org.apache" not in str(failed.value)


def test_an_error_that_is_not_the_statement_s_is_not_called_the_user_s(spark: SparkSession) -> None:
    with pytest.raises(Exception) as raised:  # a failing task: a fault, reported with --verbose's trace
        read_rows(spark, "SELECT raise_error('boom')")
    assert not isinstance(raised.value, QueryFailed)
    assert "boom" in str(raised.value)
