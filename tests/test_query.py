"""`lakehouse query` runs only statements that read unless writes are allowed: decided on Spark's plan."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from local.query import NotOneStatement, WriteRefused, refuse_writes

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
