"""Source drift: the top-level fields the source sends that a dataset does not know, counted per run.

Bronze keeps such fields as received, but Silver reads only the fields it knows, so a new field in the
source would go unnoticed; the ledger (silver.ingestion_runs.unknown_fields) records it for every run.
"""

from __future__ import annotations

from collections.abc import Collection

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def unknown_fields(raw_record: Column, known_fields: Collection[str]) -> Column:
    """The top-level field names of the record outside `known_fields`, each once: an empty array for a
    record that is not a JSON object (a record kept as raw bytes is not JSON text: see
    etl.bronze.RAW_BYTES_PREFIX)."""
    known = F.array(*(F.lit(name) for name in sorted(known_fields))) if known_fields else None
    keys = F.array_distinct(F.json_object_keys(raw_record))
    unknown = keys if known is None else F.array_except(keys, known)
    return F.coalesce(unknown, F.array().cast("array<string>"))


def unknown_field_counts(raw: DataFrame, known_fields: Collection[str]) -> DataFrame:
    """(ingestion_run_id, field, records): each field name outside `known_fields` of the runs' records,
    and how many records carried it.

    Every record counts, valid or not. A record that is not a JSON object carries no fields; a field
    given twice in one record counts once.
    """
    unknown = unknown_fields(F.col("raw_record"), known_fields)
    return (
        raw.select("ingestion_run_id", F.explode(unknown).alias("field"))
        .groupBy("ingestion_run_id", "field")
        .agg(F.count(F.lit(1)).alias("records"))
    )


def unknown_fields_per_run(raw: DataFrame, known_fields: Collection[str]) -> dict[str, dict[str, int]]:
    """unknown_field_counts as {run id: {field: records}} (one small row per run and field)."""
    per_run: dict[str, dict[str, int]] = {}
    for row in unknown_field_counts(raw, known_fields).collect():
        per_run.setdefault(row.ingestion_run_id, {})[row.field] = row.records
    return per_run
