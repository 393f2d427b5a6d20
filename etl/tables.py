"""The one definition of every Iceberg table: schema, partitioning and properties.

The Spark jobs create the tables from these definitions (`CREATE TABLE IF NOT EXISTS`, so the first run
in a new account or data directory creates them); the infrastructure reads them to scope each job's Glue
Data Catalog permissions to the tables it touches. Plain Python, no Spark or Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class Layer(Enum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL type
    comment: str
    # False: NOT NULL. A required column cannot be added to a table that has rows (etl/schema_evolution.py).
    nullable: bool = True


# Table metadata files (`*.metadata.json`, one per commit) kept besides the current one. Snapshots, and
# with them time travel, live in the current file: older files only help to inspect a table's history.
METADATA_VERSIONS_KEPT = 10

# Properties that keep a table's storage bounded. Existing tables get them too (see etl.jobs.ensure_tables):
# without them every commit leaves one more metadata file behind, for good.
STORAGE_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": str(METADATA_VERSIONS_KEPT),
    }
)

# Iceberg format v2 (row-level deletes). Parquet with zstd: smaller than snappy at similar speed.
BASE_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "format-version": "2",
        "write.format.default": "parquet",
        "write.parquet.compression-codec": "zstd",
        **STORAGE_PROPERTIES,
    }
)


@dataclass(frozen=True)
class TableDefinition:
    layer: Layer
    name: str
    comment: str
    columns: tuple[Column, ...]
    # Iceberg partition transforms, e.g. "months(created_at)".
    partitioned_by: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def all_properties(self) -> dict[str, str]:
        return {**BASE_PROPERTIES, **self.properties}

    def create_sql(self, identifier: str, property_overrides: Mapping[str, str] | None = None) -> str:
        """`CREATE TABLE IF NOT EXISTS` for this table under `identifier` (catalog.database.table)."""
        columns = ",\n  ".join(
            f"{c.name} {c.type}{'' if c.nullable else ' NOT NULL'} COMMENT '{quote_sql(c.comment)}'"
            for c in self.columns
        )
        properties = {**self.all_properties(), **(property_overrides or {})}
        props = ",\n  ".join(f"'{key}' = '{quote_sql(value)}'" for key, value in sorted(properties.items()))
        partitioning = f"\nPARTITIONED BY ({', '.join(self.partitioned_by)})" if self.partitioned_by else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {identifier} (\n  {columns}\n)\nUSING iceberg{partitioning}\n"
            f"COMMENT '{quote_sql(self.comment)}'\nTBLPROPERTIES (\n  {props}\n)"
        )


def quote_sql(text: str) -> str:
    """`text` as the inside of a single-quoted SQL string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")

SILVER_ORDERS = TableDefinition(
    layer=Layer.SILVER,
    name="orders",
    comment="Latest valid version of every order, typed and de-duplicated",
    columns=(
        Column("order_id", "BIGINT", "Order key"),
        Column("customer_id", "STRING", "Customer key"),
        Column("status", "STRING", "Lower-case: " + ", ".join(ORDER_STATUSES)),
        Column("amount", "DECIMAL(12,2)", "Order amount in `currency`"),
        Column("currency", "STRING", "ISO 4217 code, upper-case"),
        Column("created_at", "TIMESTAMP", "When the order was placed (UTC)"),
        Column("updated_at", "TIMESTAMP", "When the source last changed the order (UTC)"),
        Column("items", "STRING", "The record's `items` as JSON text, null when absent"),
        Column("ingestion_run_id", "STRING", "Lineage: the ingestion run that delivered this version"),
        Column("ingested_at", "TIMESTAMP", "Lineage: when that ingestion run started (UTC)"),
        Column("source_object", "STRING", "Lineage: the Bronze object that held this version"),
    ),
    # Monthly partitions keep files large at tens of millions of orders and prune date-range queries;
    # daily partitions would mostly hold small files.
    partitioned_by=("months(created_at)",),
    properties=MappingProxyType(
        {
            # Merge-on-read, chosen by measurement (`make bench`, docs/benchmarks.md): a 1% change MERGEs into
            # 1M orders in 3.9 s, against 6.9 s with copy-on-write, which rewrites nearly every file as
            # updates hit orders of every month. Reads pay for the delete files until compaction.
            "write.merge.mode": "merge-on-read",
            "write.update.mode": "merge-on-read",
            "write.delete.mode": "merge-on-read",
        }
    ),
)

SILVER_ORDERS_QUARANTINE = TableDefinition(
    layer=Layer.SILVER,
    name="orders_quarantine",
    comment="Records that failed validation, kept as received with one reason code each",
    columns=(
        Column("raw_record", "STRING", "The record's JSON text as received (line breaks as spaces)"),
        Column("reason", "STRING", "Stable reason code, see etl/transform/rules.py"),
        Column("source_object", "STRING", "The Bronze object that held the record"),
        Column("line_number", "INT", "1-based line of the record in that object"),
        Column("ingestion_run_id", "STRING", "The ingestion run that delivered the record"),
        Column("ingested_at", "TIMESTAMP", "When that ingestion run started (UTC)"),
        Column("quarantined_at", "TIMESTAMP", "When the Silver job quarantined the record (UTC)"),
    ),
    partitioned_by=("days(ingested_at)",),
)

SILVER_INGESTION_RUNS = TableDefinition(
    layer=Layer.SILVER,
    name="ingestion_runs",
    comment="Ledger of the ingestion runs merged into Silver: the Silver job skips the runs listed here",
    columns=(
        Column("run_id", "STRING", "Ingestion run id"),
        Column("manifest", "STRING", "Location of the run manifest"),
        Column("ingested_at", "TIMESTAMP", "When the ingestion run started (UTC)"),
        Column("records", "BIGINT", "Records the run ingested"),
        Column("accepted", "BIGINT", "Records that passed validation"),
        Column("quarantined", "BIGINT", "Records sent to quarantine"),
        Column("merged_at", "TIMESTAMP", "When the Silver job merged the run (UTC)"),
        # Added later: at the end, so that the columns before them keep their places in `SELECT *`.
        Column(
            "dataset", "STRING", "The dataset the run ingested; null for runs merged before it was recorded"
        ),
        Column(
            "unknown_fields",
            "MAP<STRING, BIGINT>",
            "Top-level fields of the run's records that the dataset does not know, and how many records "
            "carried each (every record counts, valid or not); null for runs merged before it was recorded",
        ),
    ),
)

GOLD_DAILY_SALES = TableDefinition(
    layer=Layer.GOLD,
    name="daily_sales",
    comment="Orders and revenue per UTC order date and currency",
    columns=(
        Column("order_date", "DATE", "UTC date of created_at"),
        Column("currency", "STRING", "ISO 4217 code"),
        Column("orders", "BIGINT", "All orders"),
        Column("gross_revenue", "DECIMAL(22,2)", "Sum of amount for paid, shipped, delivered"),
        Column("cancelled_orders", "BIGINT", "Orders with status cancelled"),
        Column("refunded_amount", "DECIMAL(22,2)", "Sum of amount for refunded; 0 when none"),
    ),
)

GOLD_CUSTOMER_SUMMARY = TableDefinition(
    layer=Layer.GOLD,
    name="customer_summary",
    comment="Order count, lifetime value and first and last order per customer",
    columns=(
        Column("customer_id", "STRING", "Customer key"),
        Column("orders", "BIGINT", "All orders"),
        Column("lifetime_value", "DECIMAL(22,2)", "Sum of amount for paid, shipped, delivered"),
        Column("first_order_at", "TIMESTAMP", "Earliest created_at (UTC)"),
        Column("last_order_at", "TIMESTAMP", "Latest created_at (UTC)"),
    ),
)

SILVER_TABLES = (SILVER_ORDERS, SILVER_ORDERS_QUARANTINE, SILVER_INGESTION_RUNS)
GOLD_TABLES = (GOLD_DAILY_SALES, GOLD_CUSTOMER_SUMMARY)
ALL_TABLES = SILVER_TABLES + GOLD_TABLES
