"""The baseline of `make bench`: the Silver and Gold jobs a competent engineer would write by hand.

Silver, for the orders rules only (`silver_orders`): `spark.read.text` of the runs' Bronze directories,
`from_json` with every field read as text, the rules of datasets/orders.py as one SQL CASE expression
(first broken rule, in the declaration's order, names the reason), the rejected lines appended to the
quarantine table, `row_number` de-duplication (latest `updated_at`, ties to the version received first),
and one MERGE into an Iceberg table of the same definition as silver.orders (the bench creates it with
the project's table definitions, untimed). Gold (`gold_models`): the project's own Gold SQL files, each
run as a plain overwrite.

It produces the same Silver rows as the project on the sample data (tests/test_bench_handwritten.py).
What it skips of the project's validator (etl/silver/rules.py), none of which the sample API produces:
- JSON types: every field is read as text, so a number where a string is expected (a customer_id of
  42) is accepted as "42", and `items` given as a JSON string is stored unquoted; numbers in `items`
  are written as Spark's parser re-serialises them, non-ASCII characters unescaped.
- Timestamps are Spark casts, which accept more than RFC 3339 (a date alone, a space for the `T`, no
  offset read as UTC); order ids match `[0-9]+` (a negative JSON integer is rejected).
- The amount's sign is checked after a cast to DECIMAL(38,6) (the project checks the value received);
  an amount beyond that precision is `invalid_amount`, not `amount_out_of_range`.
- Not JSON and not an object are told apart by the first character only; duplicate keys, nesting
  depth, raw-bytes lines (objects that are not UTF-8) and lone surrogates are not checked.
- Lines are ordered by `monotonically_increasing_id` (increasing within a file), so the quarantine gets
  no line number; every rejected line is appended (the project stores a re-delivered record once).
- Pages of a run directory that its manifest does not list (left by a failed attempt) are read too.
- No ledger of merged runs, counts per run, schema evolution, table maintenance or commit-conflict
  retries: the caller passes the runs to merge.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from etl import registry
from etl.bronze.layout import BronzeLayout, read_manifest
from etl.catalog import table_identifier
from etl.storage import open_store
from etl.tables import quarantine_table

_FIELDS = ("order_id", "customer_id", "status", "amount", "currency", "created_at", "updated_at", "items")
_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
_OBJECT_KEY = r"([^/]+/ingestion_date=[^/]+/run_id=([^/]+)/[^/]+)$"
_MAX_CLOCK_SKEW_SECONDS = 300

# The rules of datasets/orders.py, in its order: the first that fails is the reason, null when none does.
_REASON = f"""
CASE
    WHEN r._corrupt_record IS NOT NULL THEN
        CASE WHEN ltrim(raw_record) LIKE '{{%' THEN 'not_json' ELSE 'not_an_object' END
    WHEN r.order_id IS NULL THEN 'missing_order_id'
    WHEN NOT r.order_id RLIKE '^[0-9]+$' OR try_cast(r.order_id AS BIGINT) IS NULL THEN 'invalid_order_id'
    WHEN r.customer_id IS NULL THEN 'missing_customer_id'
    WHEN length(r.customer_id) < 1 THEN 'invalid_customer_id'
    WHEN r.status IS NULL THEN 'missing_status'
    WHEN lower(r.status) NOT IN ({", ".join(f"'{s}'" for s in _STATUSES)}) THEN 'invalid_status'
    WHEN r.amount IS NULL THEN 'missing_amount'
    WHEN try_cast(r.amount AS DECIMAL(38,6)) IS NULL THEN 'invalid_amount'
    WHEN try_cast(r.amount AS DECIMAL(38,6)) < 0 THEN 'negative_amount'
    WHEN try_cast(r.amount AS DECIMAL(12,2)) IS NULL THEN 'amount_out_of_range'
    WHEN r.currency IS NULL THEN 'missing_currency'
    WHEN NOT r.currency RLIKE '^[A-Za-z]{{3}}$' THEN 'invalid_currency'
    WHEN r.created_at IS NULL THEN 'missing_created_at'
    WHEN try_cast(r.created_at AS TIMESTAMP) IS NULL THEN 'invalid_created_at'
    WHEN r.updated_at IS NULL THEN 'missing_updated_at'
    WHEN try_cast(r.updated_at AS TIMESTAMP) IS NULL THEN 'invalid_updated_at'
    WHEN try_cast(r.updated_at AS TIMESTAMP) > ingested_at + INTERVAL {_MAX_CLOCK_SKEW_SECONDS} SECONDS
        THEN 'future_updated_at'
END
"""

_TYPED = (
    "CAST(r.order_id AS BIGINT) AS order_id",
    "r.customer_id AS customer_id",
    "lower(r.status) AS status",
    "CAST(r.amount AS DECIMAL(12,2)) AS amount",
    "upper(r.currency) AS currency",
    "CAST(r.created_at AS TIMESTAMP) AS created_at",
    "CAST(r.updated_at AS TIMESTAMP) AS updated_at",
    "r.items AS items",
)


def silver_orders(spark: SparkSession, bronze_root: str, database: str, run_ids: Sequence[str]) -> None:
    """Merge the orders of `run_ids` (finished ingestion runs) into `database`.orders and its quarantine."""
    store = open_store(bronze_root)
    layout = BronzeLayout("orders")
    manifests = [m for m in (read_manifest(store, layout, run_id) for run_id in run_ids) if m is not None]
    keys = [obj.key for m in manifests for obj in m.objects]
    if not keys:
        return
    runs = spark.createDataFrame(
        [(m.run_id, m.started_at) for m in manifests], "ingestion_run_id STRING, started_at STRING"
    ).select("ingestion_run_id", F.col("started_at").cast("timestamp").alias("ingested_at"))
    directories = sorted({store.uri(key.rsplit("/", 1)[0]) for key in keys})
    schema = ", ".join(f"{name} STRING" for name in (*_FIELDS, "_corrupt_record"))
    lines = (
        spark.read.text(directories)
        .select(
            F.col("value").alias("raw_record"),
            F.regexp_extract(F.input_file_name(), _OBJECT_KEY, 1).alias("source_object"),
            F.regexp_extract(F.input_file_name(), _OBJECT_KEY, 2).alias("ingestion_run_id"),
            F.monotonically_increasing_id().alias("line_order"),
        )
        .join(F.broadcast(runs), "ingestion_run_id")
    )
    parsed = lines.withColumn("r", F.from_json("raw_record", schema))
    validated = parsed.select(
        "raw_record", "source_object", "ingestion_run_id", "ingested_at", "line_order",
        *(F.expr(column) for column in _TYPED), F.expr(_REASON).alias("reason"),
    ).persist(StorageLevel.MEMORY_AND_DISK)  # fmt: skip
    try:
        validated.where("reason IS NOT NULL").select(
            "raw_record",
            "reason",
            "source_object",
            F.lit(None).cast("int").alias("line_number"),
            "ingestion_run_id",
            "ingested_at",
            F.current_timestamp().alias("quarantined_at"),
        ).writeTo(table_identifier(database, quarantine_table("orders").name)).append()
        first_received = Window.partitionBy("order_id").orderBy(
            F.col("updated_at").desc(), "ingested_at", "ingestion_run_id", "source_object", "line_order"
        )
        latest = (
            validated.where("reason IS NULL")
            .withColumn("_rank", F.row_number().over(first_received))
            .where("_rank = 1")
            .select(*_FIELDS, "ingestion_run_id", "ingested_at", "source_object")
        )
        latest.createOrReplaceTempView("handwritten_changes")
        spark.sql(
            f"""
            MERGE INTO {table_identifier(database, "orders")} AS t
            USING handwritten_changes AS s
            ON t.order_id = s.order_id
            WHEN MATCHED AND s.updated_at > t.updated_at THEN UPDATE SET *
            WHEN NOT MATCHED THEN INSERT *
            """
        )
    finally:
        validated.unpersist()


def gold_models(spark: SparkSession, silver_databases: dict[str, str], gold_database: str) -> None:
    """Every Gold model's SQL file over the given Silver databases (per dataset), each an overwrite."""
    for model in registry.gold_models():
        for name in model.reads:
            silver = spark.table(table_identifier(silver_databases[name], name))
            silver.createOrReplaceTempView(f"silver_{name}")
        columns = model.table.columns
        spark.sql(registry.gold_sql(model)).select(
            *(F.col(c.name).cast(c.type).alias(c.name) for c in columns)
        ).writeTo(table_identifier(gold_database, model.table.name)).overwrite(F.lit(True))
