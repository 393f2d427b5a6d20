"""What the command line prints for failures and results, without running a pipeline."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from etl import pipeline
from etl.bronze.layout import BronzeLayout, read_watermark, write_watermark
from etl.gold.job import GoldSummary
from etl.registry import UnknownDataset
from etl.silver.job import SilverSummary
from etl.storage import LocalStore
from local.cli import _one_line, _parser
from local.repair import RepairRefused
from local.report import json_line, run_summary, text_table
from local.runner import PipelineRun, StepRun


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
        StepRun(pipeline.BRONZE, 1.0, ingestion(100, True), 1),
        StepRun(pipeline.BRONZE, 1.0, ingestion(40, True), 2),
        StepRun(pipeline.SILVER, 1.0, SilverSummary(runs=("r-001", "r-002"), records=140)),
        StepRun(pipeline.GOLD, 1.0, GoldSummary(rows={"daily_sales": 3})),
    ]
    summary = run_summary(run)
    assert re.search(r"\ningestion runs +2\nrecords ingested +140\n", summary)
    assert summary.endswith("run again to go on.")
    run.steps[1] = StepRun(pipeline.BRONZE, 1.0, ingestion(40, False), 2)
    assert "run again" not in run_summary(run)


def test_the_run_summary_says_when_silver_had_nothing_new_and_gold_kept_its_tables() -> None:
    ingestion = {"records": 1, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": False}
    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    silver = SilverSummary(runs=("r-001",), records=1, accepted=1, redelivered=True)
    gold_rows = {"daily_sales": 3, "customer_summary": 2}
    run.steps += [
        StepRun(pipeline.BRONZE, 1.0, ingestion),
        StepRun(pipeline.SILVER, 1.0, silver),
        StepRun(pipeline.GOLD, 1.0, GoldSummary(rows=gold_rows, up_to_date=("daily_sales",))),
    ]
    lines = run_summary(run).splitlines()
    assert any(line.startswith("Bronze") and "1 record in 1 page," in line for line in lines)
    assert any(
        line.startswith("Silver") and "nothing new in r-001 (records already merged)" in line
        for line in lines
    )
    gold_line = next(line for line in lines if line.startswith("Gold"))
    assert gold_line.endswith(
        "rebuilt gold.customer_summary; kept gold.daily_sales: the Silver tables they read are unchanged"
    )


def cli(*argv: str) -> int:
    """A `lakehouse` command run in this process, its errors raised (main turns them into one line)."""
    args = _parser().parse_args(argv)
    code: int = args.command(args)
    return code


def test_bronze_rewind_moves_the_watermark_back_and_refuses_to_move_it_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "bronze")
    write_watermark(store, BronzeLayout("orders"), datetime(2026, 1, 5, tzinfo=UTC), "r1")

    assert (
        cli(
            "bronze",
            "rewind",
            "--to",
            "2026-01-02T00:00:00Z",
            "--dataset",
            "orders",
            "--data-dir",
            str(tmp_path),
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("Watermark 2026-01-05T00:00:00Z -> 2026-01-02T00:00:00Z: ")
    with pytest.raises(RepairRefused, match="moving it forward to 2026-01-03T00:00:00Z would skip"):
        cli(
            "bronze",
            "rewind",
            "--to",
            "2026-01-03T00:00:00Z",
            "--dataset",
            "orders",
            "--data-dir",
            str(tmp_path),
        )
    assert read_watermark(store, BronzeLayout("orders")) == datetime(2026, 1, 2, tzinfo=UTC)


def test_bronze_commands_on_a_directory_without_bronze_say_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no Bronze data in .*: pass --data-dir or --bronze-root"):
        cli("bronze", "repair", "r1", "--dataset", "orders", "--data-dir", str(tmp_path))


@pytest.mark.parametrize("action", [["repair", "r1"], ["rewind", "--to", "2026-01-02T00:00:00Z"]])
def test_bronze_commands_refuse_a_dataset_no_declaration_names(tmp_path: Path, action: list[str]) -> None:
    (tmp_path / "bronze").mkdir()
    with pytest.raises(UnknownDataset, match=r"no dataset 'prodcts' .*declared: customers, orders"):
        cli("bronze", *action, "--dataset", "prodcts", "--data-dir", str(tmp_path))
    assert list((tmp_path / "bronze").iterdir()) == []  # no watermark, no manifest for it


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["run", "--ingest-budget", "-5"], "must be more than 0 seconds"),
        (["run", "--sample-orders", "0"], "must be 1 or more"),
        (["run", "--page-size", "0"], "must be 1 or more"),
        (["sample-api", "--batches", "0"], "must be 1 or more"),
    ],
)
def test_counts_and_budgets_below_one_are_refused_by_the_parser(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert complaint in capsys.readouterr().err


def test_a_data_dir_that_is_a_file_is_refused_by_the_parser(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory")
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--data-dir", str(a_file)])
    assert f"{a_file} is a file, not a directory" in capsys.readouterr().err
    assert _parser().parse_args(["run", "--data-dir", str(tmp_path / "new")]).data_dir == tmp_path / "new"


def test_a_local_run_takes_its_audit_thresholds_from_the_command_line() -> None:
    from etl.audit.checks import AuditThresholds

    args = _parser().parse_args(["run", "--audit-max-quarantine-percent", "60"])
    assert AuditThresholds.from_arguments(args) == AuditThresholds(max_quarantine_percent=60)
    assert AuditThresholds.from_arguments(_parser().parse_args(["audits"])) == AuditThresholds()
