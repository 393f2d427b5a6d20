"""Schema evolution, never silent: bring an Iceberg table to its TableDefinition before a job writes.

What Iceberg can do to the rows already stored is applied: a new column (older rows read null), a type
widening (int to bigint, float to double, a larger decimal precision with the same scale), a required
column made optional, a new column comment. Anything else (a column dropped or renamed, a narrower or
another type, an optional column made required, a required column added) is refused before any table is
written, in one line naming the table, the column, the change and the README section on migrations.

`plan_changes` compares schemas and is plain Python; `reconcile_tables` reads the catalog and applies the
plan, once per table and session: a table already reconciled costs no catalog round trip.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql.types import DataType, DecimalType, DoubleType, FloatType, IntegerType, LongType, StructType

from etl.catalog import CATALOG, table_identifier
from etl.spark.maintenance import swept_at_creation
from etl.tables import STORAGE_PROPERTIES, WAP_PROPERTIES, TableDefinition, quote_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIGRATION_DOCS = 'README section "Change a schema"'


class SchemaChangeRefused(RuntimeError):
    """A table definition asks for a change Iceberg cannot apply to the rows already stored."""


@dataclass(frozen=True)
class SchemaChange:
    """One change of a table: `sql` applies it, or it is refused when `sql` is None."""

    column: str
    description: str
    sql: str | None = None

    @property
    def refused(self) -> bool:
        return self.sql is None


def plan_changes(identifier: str, wanted: StructType, stored: StructType) -> list[SchemaChange]:
    """The changes that turn the stored schema into the wanted one, refused ones included.

    Columns match by name: the jobs write by name (MERGE `*`, DataFrameWriterV2), so the order of the
    columns never matters, and a new column is placed where the definition has it only for readers.
    """
    stored_fields = {f.name: f for f in stored.fields}
    wanted_names = {f.name for f in wanted.fields}
    changes = [
        SchemaChange(name, "dropped or renamed: the table has it, the definition does not")
        for name in stored_fields
        if name not in wanted_names
    ]
    previous: str | None = None
    for column in wanted.fields:
        current = stored_fields.get(column.name)
        comment = _comment(column.metadata)
        if current is None:
            changes.append(
                _added(identifier, column.name, column.dataType, column.nullable, comment, previous)
            )
        else:
            changes += _altered(identifier, column.name, current.dataType, column.dataType)
            if current.nullable != column.nullable:
                changes.append(
                    SchemaChange(
                        column.name,
                        "made optional",
                        f"ALTER TABLE {identifier} ALTER COLUMN {column.name} DROP NOT NULL",
                    )
                    if column.nullable
                    else SchemaChange(column.name, "made required: stored rows may hold nulls")
                )
            if comment != _comment(current.metadata):
                changes.append(
                    SchemaChange(
                        column.name,
                        "comment changed",
                        f"ALTER TABLE {identifier} ALTER COLUMN {column.name} COMMENT '{quote_sql(comment)}'",
                    )
                )
        previous = column.name
    return changes


def _added(
    identifier: str, name: str, data_type: DataType, nullable: bool, comment: str, previous: str | None
) -> SchemaChange:
    if not nullable:
        return SchemaChange(name, "added as required: the stored rows have no value for it")
    position = "FIRST" if previous is None else f"AFTER {previous}"
    return SchemaChange(
        name,
        f"added as {data_type.simpleString()}",
        f"ALTER TABLE {identifier} ADD COLUMN {name} {data_type.simpleString()} "
        f"COMMENT '{quote_sql(comment)}' {position}",
    )


def _altered(identifier: str, name: str, stored: DataType, wanted: DataType) -> list[SchemaChange]:
    if _same_type(stored, wanted):
        return []
    change = f"type {stored.simpleString()} to {wanted.simpleString()}"
    if not is_widening(stored, wanted):
        return [SchemaChange(name, change + ": not a widening Iceberg allows")]
    sql = f"ALTER TABLE {identifier} ALTER COLUMN {name} TYPE {wanted.simpleString()}"
    return [SchemaChange(name, change, sql)]


def is_widening(stored: DataType, wanted: DataType) -> bool:
    """The type promotions Iceberg applies without rewriting data (format v2)."""
    if isinstance(stored, IntegerType):
        return isinstance(wanted, LongType)
    if isinstance(stored, FloatType):
        return isinstance(wanted, DoubleType)
    if isinstance(stored, DecimalType) and isinstance(wanted, DecimalType):
        return wanted.scale == stored.scale and wanted.precision > stored.precision
    return False


def _same_type(stored: DataType, wanted: DataType) -> bool:
    # Iceberg keeps no nullability of map values and array elements the way Spark's DDL parser sets it:
    # compare the type names, which say nothing about nullability.
    return stored.simpleString() == wanted.simpleString()


def _comment(metadata: Mapping[str, object]) -> str:
    return str(metadata.get("comment", ""))


def definition_schema(table: TableDefinition) -> StructType:
    """The table's columns as Spark types (needs a running SparkContext to parse the DDL types)."""
    from pyspark.sql.types import StructField, _parse_datatype_string

    # The types parsed in one call to Spark's parser, not one per column (each call crosses to the JVM),
    # under placeholder names: a column name needs no quoting then.
    parsed = _parse_datatype_string(", ".join(f"c{n} {c.type}" for n, c in enumerate(table.columns)))
    assert isinstance(parsed, StructType)
    return StructType(
        [
            StructField(c.name, parsed_column.dataType, c.nullable, {"comment": c.comment})
            for c, parsed_column in zip(table.columns, parsed.fields, strict=True)
        ]
    )


def refusal_message(identifier: str, refused: Sequence[SchemaChange]) -> str:
    first = refused[0]
    more = f" (and {len(refused) - 1} more change(s) refused)" if len(refused) > 1 else ""
    return (
        f"{identifier}: column {first.column} {first.description}{more}. Nothing was written: change the "
        f"definition back, or migrate the table by hand as the {MIGRATION_DOCS} explains"
    )


# Per session, the tables reconciled and the definition each was brought to: checked once per session.
_reconciled: weakref.WeakKeyDictionary[SparkSession, dict[str, TableDefinition]] = weakref.WeakKeyDictionary()


def reconcile_tables(
    spark: SparkSession,
    database: str,
    tables: Iterable[TableDefinition],
    property_overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the missing tables and bring the others to their definitions; the changes applied, one
    line each. Every table is checked before any is created or altered, so a refusal writes nothing."""
    done = _reconciled.setdefault(spark, {})
    pending = [t for t in tables if done.get(table_identifier(database, t.name)) != t]
    if not pending:
        return []
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{database}")
    plans: dict[str, list[SchemaChange]] = {}
    for table in pending:
        identifier = table_identifier(database, table.name)
        if spark.catalog.tableExists(identifier):
            plans[identifier] = plan_changes(
                identifier, definition_schema(table), spark.table(identifier).schema
            )
    for identifier, plan in plans.items():
        refused = [change for change in plan if change.refused]
        if refused:
            raise SchemaChangeRefused(refusal_message(identifier, refused))
    applied = []
    for table in pending:
        identifier = table_identifier(database, table.name)
        if identifier not in plans:
            spark.sql(table.create_sql(identifier, {**swept_at_creation(), **(property_overrides or {})}))
        for change in plans.get(identifier, []):
            spark.sql(str(change.sql))
            applied.append(f"{identifier}: column {change.column} {change.description}")
        add_missing_properties(spark, identifier, {**STORAGE_PROPERTIES, **WAP_PROPERTIES})
        done[identifier] = table
    return applied


def forget_tables(spark: SparkSession, identifiers: Iterable[str]) -> None:
    """Check these tables again on their next use (after dropping them in this session)."""
    done = _reconciled.get(spark, {})
    for identifier in identifiers:
        done.pop(identifier, None)


def add_missing_properties(spark: SparkSession, identifier: str, properties: Mapping[str, str]) -> None:
    """Set the `properties` a table does not have (tables created before they were defined); a value set
    on purpose stays."""
    present = {row["key"] for row in spark.sql(f"SHOW TBLPROPERTIES {identifier}").collect()}
    missing = {key: value for key, value in properties.items() if key not in present}
    if missing:
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in sorted(missing.items()))
        spark.sql(f"ALTER TABLE {identifier} SET TBLPROPERTIES ({assignments})")
