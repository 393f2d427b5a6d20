"""What the command line prints: aligned text tables, JSON Lines, and the summary of a pipeline run."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import Row

from etl.audit.checks import AuditResult
from etl.audit.job import AuditSummary
from etl.gold.job import GoldSummary
from etl.silver.job import SilverSummary
from etl.timestamps import format_rfc3339
from local.runner import PipelineRun, StepRun


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], thousands: bool = False) -> str:
    """An aligned table; numbers right-aligned (with separators if `thousands`), NULL for missing values."""
    cells = [[_text(value, thousands) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(_is_number(row[i]) or row[i] is None for row in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in cells)])


def json_line(headers: Sequence[str], row: Sequence[Any]) -> str:
    """One row as a JSON object; decimals keep their exact digits, timestamps are UTC RFC 3339."""
    fields = (f"{json.dumps(name)}:{_json_value(value)}" for name, value in zip(headers, row, strict=True))
    return "{" + ",".join(fields) + "}"


def _spark_start(run: PipelineRun) -> str:
    """What starting Spark cost the run: it starts beside the steps before the first Spark one."""
    hidden = run.spark_start_seconds - run.spark_wait_seconds
    return "one session for every Spark step" + (
        f"; {hidden:.1f} s of its start ran beside the ingestion" if hidden >= 0.05 else ""
    )


def run_summary(run: PipelineRun) -> str:
    """The tables printed at the end of `lakehouse run`: the steps, one column of counts per dataset, and
    the rows of each Gold table. Of a run that stopped: the steps it finished, the counts of each dataset
    whose Silver step finished, and the Gold rows only once its Gold step did."""
    finished = {(step.step.name, step.dataset) for step in run.steps}
    ran: list[str | None] = [*run.datasets] or [None]
    datasets = [dataset for dataset in ran if ("Silver", dataset) in finished]
    spark_start = [["Spark start", round(run.spark_wait_seconds, 1), _spark_start(run)]]
    steps = text_table(
        ["step", "seconds", "what it did"],
        [
            # A run that stopped before its first Spark step waited for no session.
            *(spark_start if run.spark_step_reached else []),
            *([_step_name(step), round(step.seconds, 1), _describe(step.result)] for step in run.steps),
        ],
    )
    columns = [_dataset_figures(run, dataset) for dataset in datasets]
    # Every dataset's labels, in the order they come (a dataset's unknown fields go where its own do).
    labels: list[str] = []
    for column in columns:
        for before, label in zip([None, *column], column, strict=False):
            if label not in labels:
                labels.insert(labels.index(before) + 1 if before in labels else len(labels), label)
    figures = [[label, *(column.get(label, 0) for column in columns)] for label in labels]
    headers = ["", *(dataset or "count" for dataset in datasets)]
    summary = f"Run {run.run_id}\n\n{steps}"
    if datasets:
        summary += f"\n\n{text_table(headers, figures, thousands=True)}"
    if ("Gold", None) in finished:
        gold: GoldSummary = run.result("Gold")
        rows = [[f"rows in gold.{table}", count] for table, count in gold.rows.items()]
        summary += f"\n\n{text_table(['', 'count'], rows, thousands=True)}"
    audited = [step.result for step in run.steps if isinstance(step.result, AuditSummary)]
    if audited:
        summary += f"\n\n{audit_table(audited[-1].results)}"
    behind = [
        dataset or "the dataset" for dataset in datasets if run.results("Bronze", dataset)[-1]["has_more"]
    ]
    if behind:
        summary += (
            f"\n\nThe source has more changes ({', '.join(behind)}) than this run's ingestion cap allowed: "
            "run again to go on."
        )
    return summary


def audit_table(results: Sequence[AuditResult]) -> str:
    """The audits of a run's branch, one line each: what was measured, against which threshold."""
    return text_table(
        ["audit", "table", "measured", "threshold", "result"],
        [
            [
                r.audit,
                r.table,
                r.measured,
                r.threshold,
                r.verdict,
            ]
            for r in results
        ],
    )


def _dataset_figures(run: PipelineRun, dataset: str | None) -> dict[str, int | None]:
    ingestions: list[dict[str, Any]] = run.results("Bronze", dataset)
    silver: SilverSummary = run.result("Silver", dataset)
    return {
        "ingestion runs": len(ingestions),
        "records ingested": sum(ingestion["records"] for ingestion in ingestions),
        # More than this run ingested when earlier runs were held back (a failed audit, a repair).
        "Bronze runs read by Silver": len(silver.runs),
        "records read by Silver": silver.records,
        # Records carrying a field the dataset does not know (silver.ingestion_runs.unknown_fields).
        **{f"  unknown field {name}": records for name, records in silver.unknown_fields.items()},
        "accepted": silver.accepted,
        "quarantined": silver.quarantined,
        # From the MERGE's commit; NULL where a copy-on-write commit does not record them (README).
        "merged into Silver": silver.merged,
        "  inserted": silver.inserted,
        "  updated": silver.updated,
        "not merged (older or repeated)": silver.not_merged,
    }


def _step_name(step: StepRun) -> str:
    return f"{step.step.name} {step.dataset}" if step.dataset else step.step.name


def _describe(result: Any) -> str:
    if isinstance(result, dict) and "records" in result:
        records, pages = result["records"], result["pages"]
        return (
            f"{records:,} record{'' if records == 1 else 's'} in {pages} page{'' if pages == 1 else 's'}, "
            f"watermark {result['watermark']}"
        )
    if isinstance(result, SilverSummary):
        runs = _runs(result.runs)
        if result.redelivered and result.records == 0:
            merged = f"nothing new in {runs} (no records): ledger only"
        elif result.redelivered:
            merged = f"nothing new in {runs} (records already merged): ledger only"
        else:
            merged = f"merged {runs}"
        return "; ".join([*result.schema_changes, merged, *result.maintenance])
    if isinstance(result, GoldSummary):
        rebuilt = [
            table
            for table in result.rows
            if table not in result.up_to_date and table not in result.incremental
        ]
        # Tables rebuilt for the same reason share it: "gold.a, gold.b (no earlier build recorded)".
        by_reason: dict[str | None, list[str]] = {}
        for table in rebuilt:
            by_reason.setdefault(result.full_rebuilds.get(table), []).append(f"gold.{table}")
        groups = [", ".join(names) + (f" ({why})" if why else "") for why, names in by_reason.items()]
        done = [f"rebuilt {'; '.join(groups)}"] if rebuilt else []
        if result.incremental:
            keys = ", ".join(
                f"gold.{table} ({n:,} key{'' if n == 1 else 's'})" for table, n in result.incremental.items()
            )
            done.append(f"recomputed the rows Silver changed in {keys}")
        if result.up_to_date:
            kept = ", ".join(f"gold.{table}" for table in result.up_to_date)
            done.append(f"kept {kept}: the Silver tables they read are unchanged")
        return "; ".join([*result.schema_changes, *done, *result.maintenance])
    if isinstance(result, AuditSummary):
        unmeasured = Counter(r.not_measured for r in result.results if r.not_measured)
        measured = len(result.results) - unmeasured.total()
        verdict = f"{measured - len(result.failed)} of {measured} audits passed"
        if len(unmeasured) == 1:
            verdict += f" ({unmeasured.total()} not measured: {next(iter(unmeasured))})"
        elif unmeasured:
            reasons = ", ".join(f"{count} {reason}" for reason, count in unmeasured.items())
            verdict += f" ({unmeasured.total()} not measured: {reasons})"
        if result.failed:
            failed = ", ".join(f"{r.audit} on {r.table}" for r in result.failed)
            verdict += f", published anyway (--publish-anyway): {failed}"
        tables = len(result.published)
        moved = f"branch {result.branch} published on {tables} table{'' if tables == 1 else 's'}"
        return "; ".join([verdict, moved, *result.maintenance])
    return ""


def _runs(run_ids: tuple[str, ...]) -> str:
    """The runs a Silver step merged, in a line that stays short however many a backfill made."""
    if len(run_ids) <= 2:
        return ", ".join(run_ids) or "no new runs"
    return f"{len(run_ids)} runs, {run_ids[0]} to {run_ids[-1]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


# Characters that would break a table's row or move the terminal's cursor, shown as Python escapes them
# (\r, \x1b, \u2028): one row stays one line. `--format json` gives the exact text.
_ESCAPED = {code: repr(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


def _text(value: Any, thousands: bool) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return _utc(value)
    if thousands and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).translate(_ESCAPED)


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(str(value).replace("inf", "Infinity").replace("nan", "NaN"))
    if isinstance(value, datetime):
        return json.dumps(_utc(value))
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, bytes | bytearray):
        return json.dumps(base64.b64encode(value).decode())
    if isinstance(value, Row):
        value = value.asDict()
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{json.dumps(str(key))}:{_json_value(item)}" for key, item in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_value(item) for item in value) + "]"
    return json.dumps(value, default=str)


def _utc(value: datetime) -> str:
    # Spark hands timestamps to Python as naive local times; build_session pins the process time zone to UTC.
    return format_rfc3339(value.replace(tzinfo=UTC) if value.tzinfo is None else value)
