"""What `lakehouse query` runs: without `--allow-writes`, only statements that read.

The statement is parsed by the session's own parser (Spark's, with Iceberg's extensions), and its plan,
not its text, decides: a comment, odd casing or a CTE in front of a write changes nothing, and text that
is not exactly one statement does not parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

READ_STATEMENTS = "SELECT, WITH, TABLE, VALUES, SHOW, DESCRIBE, EXPLAIN"

# Commands that only read; every other command (DROP, DELETE, MERGE, SET, CALL, ...) is refused.
_READ_COMMAND_PREFIXES = ("Show", "Describe")
_READ_COMMANDS = frozenset({"ExplainCommand"})
_LOGICAL = "org.apache.spark.sql.catalyst.plans.logical."
# Plan nodes that write without being a Command: INSERT (and FROM ... INSERT), INSERT OVERWRITE DIRECTORY,
# and parsed statements such as Iceberg's CALL.
_WRITING_NODES = frozenset({"InsertIntoDir"})


class WriteRefused(ValueError):
    """The statement would change something and writes were not allowed."""


class NotOneStatement(ValueError):
    """The text is not exactly one SQL statement."""


class QueryFailed(ValueError):
    """The statement names something that is not there, or does not fit: the user's to fix."""


# Iceberg's words when `VERSION AS OF` names no snapshot, branch or tag of the table.
_NO_SUCH_VERSION = "Cannot find matching snapshot ID or reference name for version"


def read_rows(spark: SparkSession, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The statement's column names and rows; QueryFailed, in one line, for what the statement got wrong."""
    from pyspark.errors import AnalysisException, IllegalArgumentException

    try:
        frame = spark.sql(sql)
        return frame.columns, [tuple(row) for row in frame.collect()]
    except (AnalysisException, IllegalArgumentException) as error:  # no such table, column or snapshot
        raise QueryFailed((str(error).strip().splitlines() or [""])[0]) from error
    except Exception as error:  # Iceberg's ValidationException reaches Python as a Py4JJavaError
        java = getattr(error, "java_exception", None)
        message = str(java.getMessage() or "") if java is not None else ""
        if not message.startswith(_NO_SUCH_VERSION):
            raise
        raise QueryFailed(
            f"{message}: the table has no snapshot, branch or tag of that name (`SELECT * FROM "
            "<table>.refs` lists its branches and tags; a run's branch is dropped once it is published)"
        ) from error


def refuse_writes(spark: SparkSession, sql: str) -> None:
    """Return when `sql` is one statement that only reads; raise WriteRefused or NotOneStatement."""
    from pyspark.errors import ParseException

    try:
        # PySpark turns the JVM's ParseException into its own (its handler wraps every py4j call).
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)
    except ParseException as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise NotOneStatement(f"not one SQL statement Spark can read: {first}") from error
    writing = _writing_node(spark, plan)
    if writing is not None:
        raise WriteRefused(
            f"lakehouse query only reads ({READ_STATEMENTS}); its plan ({writing}) may write: "
            "add --allow-writes to run it (Bronze keeps every record: `lakehouse rebuild` restores tables)"
        )


def _writing_node(spark: SparkSession, plan: Any) -> str | None:
    """The name of the first node of the parsed plan that may write, or None."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    command = jvm.java.lang.Class.forName(_LOGICAL + "Command")
    parsed = jvm.java.lang.Class.forName(_LOGICAL + "ParsedStatement")
    root = plan.getClass().getSimpleName()
    if command.isInstance(plan) and (root in _READ_COMMANDS or root.startswith(_READ_COMMAND_PREFIXES)):
        return None  # EXPLAIN does not run its statement; SHOW and DESCRIBE read the catalog
    nodes = [plan]
    while nodes:
        node = nodes.pop()
        name = node.getClass().getSimpleName()
        if command.isInstance(node) or parsed.isInstance(node) or name in _WRITING_NODES:
            return str(name)
        children = node.children()
        nodes.extend(children.apply(i) for i in range(children.size()))
    return None
