"""The saved queries of the analysts' Athena workgroup, generated from the table and dataset declarations.

One query per Gold table (its columns, a first look) and one quarantine report per dataset (rejected records
per reason and day): a Gold model or dataset added under datasets/ brings its query with no other edit.
The text is Athena (Trino) SQL; tests/infra/test_analytics.py parses it and checks every column it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from etl.dataset import Dataset
from etl.registry import datasets, gold_tables
from etl.tables import TableDefinition

# Rows the first look at a Gold table returns: enough to see its shape, cheap on any table size.
PREVIEW_ROWS = 100
# The quarantine report covers this many days (the table is partitioned by day, so older ones are skipped).
QUARANTINE_REPORT_DAYS = 30


@dataclass(frozen=True)
class SavedQuery:
    """A named query: what the console lists (name, description), where it runs and its SQL."""

    # Unique among the stack's queries, for naming the resource, e.g. gold-daily-sales.
    key: str
    name: str
    description: str
    database: str
    sql: str


def gold_table_query(table: TableDefinition, database: str) -> SavedQuery:
    columns = ",\n    ".join(table.column_names)
    return SavedQuery(
        key=f"gold-{table.name}".replace("_", "-"),
        # The database in the name tells the stacks' queries apart where two stacks share an account.
        name=f"{database}.{table.name}",
        description=f"gold.{table.name}: {table.comment}"[:1024],
        database=database,
        sql=(
            f"-- gold.{table.name}: {table.comment}\n"
            f"SELECT\n    {columns}\nFROM {_identifier(database, table.name)}\nLIMIT {PREVIEW_ROWS}\n"
        ),
    )


def quarantine_report(dataset: Dataset, database: str) -> SavedQuery:
    table = dataset.quarantine_table
    return SavedQuery(
        key=f"{dataset.name}-quarantine-report".replace("_", "-"),
        name=f"{database}.{table.name} by reason",
        description=(
            f"Records of {dataset.name} that failed validation in the last {QUARANTINE_REPORT_DAYS} days, "
            "per reason and ingestion day, with one example each"
        ),
        database=database,
        sql=(
            f"-- silver.{table.name}: rejected records of {dataset.name} per reason and day "
            "(reason codes: see etl/dataset.py)\n"
            "SELECT\n"
            "    reason,\n"
            "    CAST(ingested_at AS DATE) AS ingested_on,\n"
            "    COUNT(*) AS records,\n"
            "    MIN(raw_record) AS example\n"
            f"FROM {_identifier(database, table.name)}\n"
            # A bound on the partition column itself, so Athena reads only the days asked for.
            "WHERE ingested_at >= "
            f"CAST(current_date - INTERVAL '{QUARANTINE_REPORT_DAYS}' DAY AS TIMESTAMP)\n"
            "GROUP BY reason, CAST(ingested_at AS DATE)\n"
            "ORDER BY ingested_on DESC, records DESC\n"
        ),
    )


def saved_queries(gold_database: str, silver_database: str) -> tuple[SavedQuery, ...]:
    """Every Gold table's query, then every dataset's quarantine report, as the registry declares them."""
    return (
        *(gold_table_query(table, gold_database) for table in gold_tables()),
        *(quarantine_report(dataset, silver_database) for dataset in datasets()),
    )


def _identifier(database: str, table: str) -> str:
    return f'"{database}"."{table}"'
