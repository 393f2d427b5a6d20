"""What the command line prints for failures and results, without running a pipeline."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from etl.cli import _one_line
from etl.report import json_line, text_table


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
