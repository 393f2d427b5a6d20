"""Silver transformations for any declared dataset: pure functions, DataFrame in and DataFrame out.

raw records --validate_records--> validated --accepted_records--> latest_versions --> MERGE
                                           \\--quarantined_records------------------> quarantine
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl.bronze.layout import MAX_CLOCK_SKEW
from etl.dataset import CHECK_FAILED, Dataset
from etl.silver import quick_path
from etl.silver.bronze_lines import ArrowFunction
from etl.silver.rules import Rejected, Validator, parse_record, unknown_fields

# What the Bronze reader produces: one row per line of a Bronze object.
RAW_SCHEMA = (
    "raw_record STRING, source_object STRING, line_number INT, ingestion_run_id STRING, ingested_at TIMESTAMP"
)
_RAW_NAMES = [column.split()[0] for column in RAW_SCHEMA.split(", ")]
LINEAGE_COLUMNS = ("ingestion_run_id", "ingested_at", "source_object")

_DECIMAL = pa.decimal128
_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "SMALLINT": pa.int16(),
    "TINYINT": pa.int8(),
    "STRING": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def validate_records(
    raw: DataFrame,
    dataset: Dataset,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    quick: bool = True,
    lines: ArrowFunction | None = None,
) -> DataFrame:
    """Every raw row with the dataset's typed columns, or null columns and the reason it was rejected,
    and the names of its record's fields the dataset does not know (`unknown_fields`, null for none).
    The raw text is kept on rejected rows only (for the quarantine).

    `raw` holds the raw rows (RAW_SCHEMA), or, given `lines`, what that Arrow function turns into raw
    rows in the same Python process (the Silver job's read of Bronze, bronze_lines.py).

    The rules run in Python (see rules.py) over Arrow batches, most records on their quick path
    (quick_path.py, unless `quick` is False); the raw columns pass through unchanged.
    """
    typed = ", ".join(f"{f.name} {f.type}" for f in dataset.fields)
    schema = f"{RAW_SCHEMA}, {typed}, reason STRING, unknown_fields ARRAY<STRING>"
    check = check_batches(dataset, quick)
    if lines is None:
        checked = raw.select(*_RAW_NAMES).mapInArrow(check, schema)
    else:
        read = lines
        checked = raw.mapInArrow(lambda batches: check(read(batches)), schema)
    validated = reject_future_versions(checked, dataset, max_clock_skew)
    # Only the quarantine needs the text: an accepted row without it is a fraction of the size to keep.
    return validated.withColumn("raw_record", F.when(F.col("reason").isNotNull(), F.col("raw_record")))


def reject_future_versions(validated: DataFrame, dataset: Dataset, max_clock_skew: timedelta) -> DataFrame:
    """Valid rows whose version is stamped more than `max_clock_skew` after their run started get the
    reason future_<version>: such a version would win over every real later update of the record. The run's
    start, not the job's clock, is the reference, with the tolerance the watermark uses, so that a
    replay of the same runs decides the same way."""
    limit = F.col("ingested_at") + F.expr(f"INTERVAL {int(max_clock_skew.total_seconds())} SECONDS")
    future = F.col("reason").isNull() & (F.col(dataset.version) > limit)
    return validated.withColumn(
        "reason", F.when(future, F.lit(dataset.future_reason)).otherwise(F.col("reason"))
    )


def accepted_records(validated: DataFrame, dataset: Dataset) -> DataFrame:
    """The valid rows: typed columns, lineage, and the line (for tie-breaks)."""
    return validated.where(F.col("reason").isNull()).select(
        *dataset.field_names, *LINEAGE_COLUMNS, "line_number"
    )


def quarantined_records(validated: DataFrame, quarantined_at: Column | None = None) -> DataFrame:
    """The invalid rows as the quarantine table stores them."""
    return validated.where(F.col("reason").isNotNull()).select(
        "raw_record",
        "reason",
        "source_object",
        "line_number",
        "ingestion_run_id",
        "ingested_at",
        (quarantined_at if quarantined_at is not None else F.current_timestamp()).alias("quarantined_at"),
    )


def latest_versions(records: DataFrame, dataset: Dataset) -> DataFrame:
    """One row per key: the latest version.

    Ties (same key and version) go to the version received first: earliest ingestion run, then
    Bronze object, then line. The MERGE keeps the stored version on a tie too, so the result does not
    depend on how runs are grouped into Silver jobs.
    """
    first_received = Window.partitionBy(*dataset.keys).orderBy(
        F.col(dataset.version).desc(),
        F.col("ingested_at").asc(),
        F.col("ingestion_run_id").asc(),
        F.col("source_object").asc(),
        F.col("line_number").asc(),
    )
    ranked = records.withColumn("_rank", F.row_number().over(first_received))
    return ranked.where(F.col("_rank") == 1).drop("_rank").drop("line_number")


def check_batches(dataset: Dataset, quick: bool = True) -> ArrowFunction:
    """The Arrow function that validates raw batches against the dataset (run on the executors).

    A record in the usual form takes the quick path (quick_path.py) when msgspec is installed and
    `quick` is set; the rules decide every other one, with the same results either way.
    """
    names = [*dataset.field_names, "reason", "unknown_fields"]
    types = [*(_arrow_type(f.type) for f in dataset.fields), pa.string(), pa.list_(pa.string())]
    known = frozenset(dataset.field_names)
    rejected = (None,) * len(dataset.fields)

    def check(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        validate = Validator(dataset)
        # Decided where the batches are checked: an executor without msgspec takes the rules alone.
        decide = quick_path.QuickPath(dataset) if quick and quick_path.available() else None
        for batch in batches:
            texts = batch.column("raw_record").to_pylist()
            # The quick path first, over the whole batch (a record it decides is valid); then the rules,
            # for the records it left.
            decided = [decide(t) for t in texts] if decide else [None] * len(texts)
            rows: list[tuple[Any, ...]] = []
            reasons: list[str | None] = [None] * len(texts)
            unknown: list[list[str] | None] = []
            for at, quickly_decided in enumerate(decided):
                if quickly_decided is None:
                    values, reasons[at], fields = _checked(texts[at], validate, known, rejected)
                else:
                    values, fields = quickly_decided
                rows.append(values)
                unknown.append(fields)
            columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in rejected]
            typed = [
                pa.array(values, type=arrow)
                for values, arrow in zip([*columns, reasons, unknown], types, strict=True)
            ]
            yield pa.RecordBatch.from_arrays([*batch.columns, *typed], names=[*batch.schema.names, *names])

    return check


def _checked(
    text: str, validate: Validator, known: frozenset[str], rejected: tuple[None, ...]
) -> tuple[tuple[Any, ...], str | None, list[str] | None]:
    """(typed values, reason, unknown fields) of a record, by the rules."""
    record = None
    try:
        record = parse_record(text)
        values = validate.typed(record)
    except Rejected as e:
        return rejected, e.reason, unknown_fields(text, record, known)
    except Exception:  # a bug in a rule: quarantine the record rather than fail every run on it
        return rejected, CHECK_FAILED, None
    return values, None, unknown_fields(text, record, known)


def _arrow_type(spark_type: str) -> pa.DataType:
    kind = spark_type.strip().upper()
    if kind.startswith("DECIMAL("):
        precision, scale = (int(part) for part in kind[len("DECIMAL(") : -1].split(","))
        return _DECIMAL(precision, scale)
    return _ARROW_TYPES[kind]
