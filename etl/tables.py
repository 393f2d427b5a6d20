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
    # False: NOT NULL. A required column cannot be added to a table that has rows
    # (etl/spark/schema_evolution.py).
    nullable: bool = True


# Table metadata files (`*.metadata.json`, one per commit) kept besides the current one. Snapshots, and
# with them time travel, live in the current file: older files only help to inspect a table's history.
METADATA_VERSIONS_KEPT = 10

# Properties that keep a table's storage bounded. Existing tables get them too (see
# etl.spark.jobs.ensure_tables): without them every commit leaves one more metadata file behind, for good.
STORAGE_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": str(METADATA_VERSIONS_KEPT),
    }
)

# Write-audit-publish (etl/spark/branches.py): a session that names a branch in `spark.wap.branch` writes
# to it and reads it; without that setting writes go to `main` as before. Existing tables get it too.
WAP_PROPERTIES: Mapping[str, str] = MappingProxyType({"write.wap.enabled": "true"})

# Iceberg format v2 (row-level deletes). Parquet with zstd: smaller than snappy at similar speed.
BASE_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "format-version": "2",
        "write.format.default": "parquet",
        "write.parquet.compression-codec": "zstd",
        **STORAGE_PROPERTIES,
        **WAP_PROPERTIES,
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


def quarantine_table(dataset: str) -> TableDefinition:
    """silver.<dataset>_quarantine: the dataset's records that failed validation."""
    return TableDefinition(
        layer=Layer.SILVER,
        name=f"{dataset}_quarantine",
        comment="Records that failed validation, kept as received with one reason code each",
        columns=_QUARANTINE_COLUMNS,
        partitioned_by=("days(ingested_at)",),
    )


_QUARANTINE_COLUMNS = (
    Column("raw_record", "STRING", "The record's JSON text as received (line breaks as spaces)"),
    Column("reason", "STRING", "Stable reason code, see etl/dataset.py"),
    Column("source_object", "STRING", "The Bronze object that held the record"),
    Column("line_number", "INT", "1-based line of the record in that object"),
    Column("ingestion_run_id", "STRING", "The ingestion run that delivered the record"),
    Column("ingested_at", "TIMESTAMP", "When that ingestion run started (UTC)"),
    Column("quarantined_at", "TIMESTAMP", "When the Silver job quarantined the record (UTC)"),
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

# The tables of the datasets and Gold models are declared under datasets/ (see etl/registry.py).
