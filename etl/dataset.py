"""What a dataset declaration says: where its records come from, how they are checked, typed and stored.

A dataset is declared once, in `datasets/<name>.py` (see README, "Add a dataset"); the Bronze layout, the
Silver job's validation and MERGE, its quarantine, the Gold models that read it and the infrastructure all
derive from that declaration. Plain Python, no Spark or Pulumi: the validation in etl/silver/rules.py
interprets these types, one record at a time.

Reason codes are stable, so that quarantine counts compare across runs and releases: `missing_<column>`
(a required column absent or null), `invalid_<column>` (a value of the wrong JSON type or one a
constraint refuses), `<column>_out_of_range` (a number the column's DECIMAL type cannot hold), or the
code a constraint declares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any

from etl.audit.checks import DATASET_AUDITS, Audit
from etl.tables import Column, Layer, TableDefinition, quarantine_table


@dataclass(frozen=True)
class Constraint:
    """A rule a present value must satisfy; `reason` None means `invalid_<column>`."""

    reason: str | None = None

    def apply(self, value: Any) -> Any:
        """The value as stored (constraints may normalise it), or raise ValueError."""
        raise NotImplementedError

    def checker(self) -> Callable[[Any], Any]:
        """`apply` as a plain function, its settings bound once (validation calls it for every record)."""
        return self.apply


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of `values`; with `fold` ("lower" or "upper") compared and stored in that case."""

    values: Collection[str] = ()
    fold: str | None = None

    def apply(self, value: Any) -> Any:
        return self.checker()(value)

    def checker(self) -> Callable[[Any], Any]:
        values, fold = frozenset(self.values), _folding(self.fold)

        def check(value: Any) -> Any:
            if not isinstance(value, str):
                raise ValueError
            folded = fold(value)
            if folded not in values:
                raise ValueError
            return folded

        return check


@dataclass(frozen=True)
class Pattern(Constraint):
    """A string the regular expression matches whole; with `fold` stored in that case."""

    regex: str = ".*"
    fold: str | None = None

    def apply(self, value: Any) -> Any:
        return self.checker()(value)

    def checker(self) -> Callable[[Any], Any]:
        matches, fold = re.compile(self.regex).fullmatch, _folding(self.fold)

        def check(value: Any) -> Any:
            if not isinstance(value, str) or matches(value) is None:
                raise ValueError
            return fold(value)

        return check


@dataclass(frozen=True)
class Length(Constraint):
    """A string of `minimum` to `maximum` characters."""

    minimum: int = 0
    maximum: int | None = None

    def apply(self, value: Any) -> Any:
        if len(value) < self.minimum or (self.maximum is not None and len(value) > self.maximum):
            raise ValueError
        return value


@dataclass(frozen=True)
class Range(Constraint):
    """A number within [minimum, maximum], checked on the value as received (before rounding)."""

    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None

    def apply(self, value: Any) -> Any:
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise ValueError
        return value


@dataclass(frozen=True)
class Check(Constraint):
    """A custom Python check: `test(value)` is true for a valid value."""

    test: Callable[[Any], bool] = bool

    def apply(self, value: Any) -> Any:
        if not self.test(value):
            raise ValueError
        return value


def _folding(fold: str | None) -> Callable[[str], str]:
    if fold == "lower":
        return str.lower
    if fold == "upper":
        return str.upper
    if fold is None:
        return _as_is
    raise ValueError(f"fold must be 'lower', 'upper' or None, got {fold!r}")


def _as_is(value: str) -> str:
    return value


@dataclass(frozen=True)
class Field:
    """One column of the dataset: read from the record's top-level field of the same name.

    The Spark type decides how a JSON value is read: BIGINT/INT from an integer or a string of digits,
    DECIMAL(p,s) from a number or a numeric string (rounded half up to s places), TIMESTAMP from an
    RFC 3339 string with an offset (stored as UTC), STRING from a string; with `json=True` any JSON value
    is stored as compact JSON text.
    """

    name: str
    type: str
    comment: str
    required: bool = True
    constraints: tuple[Constraint, ...] = ()
    json: bool = False


@dataclass(frozen=True)
class Source:
    """Where the dataset's records are fetched; None keeps the shared source setting."""

    path: str
    data_field: str | None = None
    next_cursor_field: str | None = None
    since_param: str | None = None
    limit_param: str | None = None
    cursor_param: str | None = None


# Columns every Silver table ends with: which ingestion run delivered the version.
LINEAGE = (
    Column("ingestion_run_id", "STRING", "Lineage: the ingestion run that delivered this version"),
    Column("ingested_at", "TIMESTAMP", "Lineage: when that ingestion run started (UTC)"),
    Column("source_object", "STRING", "Lineage: the Bronze object that held this version"),
)


class WriteMode(Enum):
    """How the MERGE changes rows of a Silver table: merge-on-read writes delete files (fast writes, reads
    pay until compaction), copy-on-write rewrites the data files the changed rows are in."""

    MERGE_ON_READ = "merge-on-read"
    COPY_ON_WRITE = "copy-on-write"

    @property
    def properties(self) -> Mapping[str, str]:
        return MappingProxyType({f"write.{op}.mode": self.value for op in ("merge", "update", "delete")})


# Reasons any record can get, before its fields are read, in the order they are checked.
RECORD_REASONS = (
    "not_utf8",  # kept in Bronze as raw bytes (see etl/bronze/layout.py)
    "too_deep",  # nests deeper than MAX_NESTING: parsing it could exhaust the stack
    "not_json",
    "duplicate_key",  # an object with a key twice: which value counts is ambiguous, so neither does
    "not_an_object",
)
CHECK_FAILED = "check_failed"  # a rule raised an error of its own: a bug, but one record must not stop Silver


@dataclass(frozen=True)
class Dataset:
    name: str
    comment: str
    source: Source
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    version: str  # the TIMESTAMP field whose latest value wins; a tie keeps the version received first
    partitioned_by: tuple[str, ...] = ()  # Iceberg partition transforms, e.g. "months(created_at)"
    write_mode: WriteMode = WriteMode.MERGE_ON_READ
    # What a run's branch must pass before `main` moves (etl/audit/checks.py).
    audits: tuple[Audit, ...] = DATASET_AUDITS

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        missing = [k for k in (*self.keys, self.version) if k not in names]
        if missing or not self.keys:
            raise ValueError(f"dataset {self.name}: keys and version must be declared fields ({missing})")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def future_reason(self) -> str:
        """A version stamped later than its run started (see etl/silver/records.py)."""
        return f"future_{self.version}"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason code, in the order the rules are checked."""
        codes: list[str] = list(RECORD_REASONS)
        for f in self.fields:
            if f.required:
                codes.append(f"missing_{f.name}")
            if not f.json:
                codes.append(f"invalid_{f.name}")
            codes += [c.reason or f"invalid_{f.name}" for c in f.constraints]
            if f.type.upper().startswith("DECIMAL"):
                codes.append(f"{f.name}_out_of_range")
        codes += [CHECK_FAILED, self.future_reason]
        return tuple(dict.fromkeys(codes))

    @property
    def silver_table(self) -> TableDefinition:
        return TableDefinition(
            layer=Layer.SILVER,
            name=self.name,
            comment=self.comment,
            columns=(*(Column(f.name, f.type, f.comment) for f in self.fields), *LINEAGE),
            partitioned_by=self.partitioned_by,
            properties=self.write_mode.properties,
        )

    @property
    def quarantine_table(self) -> TableDefinition:
        return quarantine_table(self.name)

    @property
    def tables(self) -> tuple[TableDefinition, ...]:
        return (self.silver_table, self.quarantine_table)


@dataclass(frozen=True)
class GoldModel:
    """A Gold table: its definition, the datasets whose Silver tables it reads, and its SQL, in the file
    `<table name>.sql` beside the declaration. The SQL reads each dataset as the view `silver_<dataset>`,
    so the same text runs locally and on Glue.

    `key` names the columns that identify a row (the SQL's GROUP BY) and `touched` is the SQL that lists the
    keys of every row a change to Silver can alter, reading the views `changed_<dataset>` (the old and the
    new version of each Silver row that changed since the table's last build; empty when none did) and
    `silver_<dataset>`. With both, the Gold job recomputes only those rows (etl/gold/job.py); a key the
    SQL misses would leave a stale row, which the tests catch by comparing with a full rebuild. Without
    them, every run that finds Silver changed rebuilds the table in full."""

    table: TableDefinition
    reads: tuple[str, ...]
    key: tuple[str, ...] = ()
    touched: str | None = None
    # What a run's branch must pass before `main` moves (etl/audit/checks.py).
    audits: tuple[Audit, ...] = ()

    def __post_init__(self) -> None:
        names = {column.name for column in self.table.columns}
        unknown = [name for name in self.key if name not in names]
        if unknown:
            raise ValueError(f"gold.{self.table.name}: key columns {unknown} are not columns of the table")
        if bool(self.key) != (self.touched is not None):
            raise ValueError(f"gold.{self.table.name}: declare both `key` and `touched`, or neither")
