"""What the command line prints for failures and results, without running a pipeline."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from etl import pipeline
from etl.cli import _one_line
from etl.load.job import GoldSummary
from etl.report import json_line, run_summary, text_table
from etl.runner import PipelineRun, StepRun
from etl.transform.job import SilverSummary


def test_an_error_in_a_python_worker_is_reported_by_its_last_line() -> None:
    error = RuntimeError(
        "\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "UnicodeEncodeError: 'utf-8' codec can't encode character\n"
    )
    assert _one_line(error) == "UnicodeEncodeError: 'utf-8' codec can't encode character"


def test_a_plain_error_is_its_first_line() -> None:
    assert _one_line(ValueError("no tables yet\nmore")) == "no tables yet"


def test_json_lines_keep_decimal_digits_and_write_utc() -> None:
    row = (
        Decimal("10.10"),
        datetime(2026, 1, 1, 8, tzinfo=UTC),
        date(2026, 1, 1),
        None,
        float("nan"),
        b"\x00",
    )
    line = json_line(["a", "t", "d", "n", "f", "b"], row)
    assert line == '{"a":10.10,"t":"2026-01-01T08:00:00Z","d":"2026-01-01","n":null,"f":"NaN","b":"AA=="}'


def test_text_tables_align_numbers_right() -> None:
    table = text_table(["name", "n"], [["a", 5], ["bb", 12345]], thousands=True)
    assert table.splitlines() == ["name       n", "----  ------", "a          5", "bb    12,345"]


def test_the_run_summary_counts_every_ingestion_run_and_says_when_the_source_has_more() -> None:
    def ingestion(records: int, has_more: bool) -> dict[str, object]:
        return {"records": records, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": has_more}

    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    run.steps += [
        StepRun(pipeline.INGEST, 1.0, ingestion(100, True), 1),
        StepRun(pipeline.INGEST, 1.0, ingestion(40, True), 2),
        StepRun(pipeline.SILVER, 1.0, SilverSummary(runs=("r-001", "r-002"), records=140)),
        StepRun(pipeline.GOLD, 1.0, GoldSummary(rows={"daily_sales": 3})),
    ]
    summary = run_summary(run)
    assert re.search(r"\ningestion runs +2\nrecords ingested +140\n", summary)
    assert summary.endswith("run again to go on.")
    run.steps[1] = StepRun(pipeline.INGEST, 1.0, ingestion(40, False), 2)
    assert "run again" not in run_summary(run)
