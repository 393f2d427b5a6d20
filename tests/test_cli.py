"""What the command line prints for failures and results, without running a pipeline."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from etl import pipeline
from etl.bronze.ingest import ingest
from etl.bronze.layout import BronzeLayout, read_watermark, write_watermark
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.gold.job import GoldSummary
from etl.registry import UnknownDataset
from etl.silver.job import SilverSummary
from etl.storage import LocalStore
from local.cli import _one_line, _parser, as_invoked, main
from local.repair import RepairRefused, rewind_watermark
from local.report import json_line, run_summary, text_table
from local.runner import PipelineRun, StepRun
from tests.fixed_api import FixedPagesApi
from tests.test_end_to_end import lakehouse


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


def test_a_text_table_row_stays_one_line_whatever_its_text_holds() -> None:
    table = text_table(["name", "n"], [["José\rPérez\n\x1b[2J", 1], ["Zoë\u2028東京", 2]])

    first, second = "José\\rPérez\\n\\x1b[2J", "Zoë\\u2028東京"  # 20 and 11 characters
    assert table.splitlines()[2:] == [f"{first}  1", f"{second}{' ' * 9}  2"]


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


def test_the_run_summary_gives_the_reason_of_tables_rebuilt_in_full_once_for_all_that_share_it() -> None:
    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    first = "no earlier build recorded"
    gold = GoldSummary(
        rows={"a": 1, "b": 1, "c": 1, "d": 1},
        incremental={"d": 1},
        full_rebuilds={"a": first, "b": "its definition changed", "c": first},
    )
    ingestion = {"records": 1, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": False}
    silver = SilverSummary(runs=("r-001",), records=1, accepted=1)
    run.steps += [
        StepRun(pipeline.BRONZE, 1.0, ingestion),
        StepRun(pipeline.SILVER, 1.0, silver),
        StepRun(pipeline.GOLD, 1.0, gold),
    ]
    gold_line = next(line for line in run_summary(run).splitlines() if line.startswith("Gold"))
    assert gold_line.endswith(
        "rebuilt gold.a, gold.c (no earlier build recorded); gold.b (its definition changed); "
        "recomputed the rows Silver changed in gold.d (1 key)"
    )


def test_the_summary_of_a_run_that_stopped_shows_what_it_finished() -> None:
    ingestion = {"records": 2, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": False}
    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    silver = SilverSummary(runs=("r-001",), records=2, accepted=2, inserted=2)
    run.steps += [
        StepRun(pipeline.BRONZE, 1.0, ingestion, dataset="customers"),
        StepRun(pipeline.SILVER, 1.0, silver, dataset="customers"),
        StepRun(pipeline.BRONZE, 1.0, ingestion, dataset="orders"),  # its Silver step failed
    ]
    summary = run_summary(run)
    lines = summary.splitlines()
    steps = [line.split()[:2] for line in lines if re.match(r"(Bronze|Silver|Gold)( \w+)? +[\d.]+ ", line)]
    assert steps == [["Bronze", "customers"], ["Silver", "customers"], ["Bronze", "orders"]]
    (header,) = [line for line in lines if line.strip().startswith("customers")]
    assert header.split() == ["customers"]  # orders has no column: its Silver step did not finish
    assert re.search(r"\nrecords read by Silver +2\n", summary)
    assert "rows in gold" not in summary


def test_the_summary_shows_spark_start_only_for_a_run_that_reached_a_spark_step() -> None:
    ingestion = {"records": 2, "pages": 1, "watermark": "2026-01-01T00:00:00Z", "has_more": False}
    run = PipelineRun(run_id="r", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    run.steps.append(StepRun(pipeline.BRONZE, 1.0, ingestion, dataset="customers"))  # then it failed
    assert "Spark start" not in run_summary(run)
    run.spark_step_reached, run.spark_wait_seconds, run.spark_start_seconds = True, 2.5, 4.0
    (line,) = [line for line in run_summary(run).splitlines() if line.startswith("Spark start")]
    assert line.split(None, 3)[2:] == [
        "2.5",
        "one session for every Spark step; 1.5 s of its start ran beside the ingestion",
    ]


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
        (["run", "--page-size", "0"], "must be between 1 and 10000, got 0"),
        # Refused before the sample API publishes a batch, not by the ingestion's settings after it.
        (["run", "--page-size", "20000"], "must be between 1 and 10000, got 20000"),
        (["sample-api", "--batches", "0"], "must be 1 or more"),
    ],
)
def test_counts_and_budgets_out_of_range_are_refused_by_the_parser(
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


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["run"], False),
        (["--verbose", "run"], True),
        (["run", "--verbose"], True),  # after the command, where the error line's hint leads users
        (["query", "SELECT 1", "-v"], True),
        (["bronze", "rewind", "--to", "2026-01-01T00:00:00Z", "--dataset", "orders", "--verbose"], True),
    ],
)
def test_verbose_goes_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert _parser().parse_args(argv).verbose is verbose


@pytest.mark.parametrize("command", ["run", "audits"])
def test_the_help_says_what_each_audit_threshold_bounds_with_its_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args([command, "--help"])
    text = capsys.readouterr().out
    section = " ".join(text[text.index("audit thresholds:") :].split())  # as one line, unwrapped
    assert section.startswith("audit thresholds: what a run's branch must meet to be published (README:")
    options = re.findall(r"(--audit-\S+ [A-Z]+) (.+?\(default [\d.]+\))", section)
    assert options == [
        (
            "--audit-min-records N",
            "records each dataset's ingestion must deliver in a run; 0: none (default 0)",
        ),
        (
            "--audit-empty-after-runs N",
            "an empty run after N non-empty ones in a row fails (the source went quiet); 0: never "
            "(default 3)",
        ),
        (
            "--audit-max-quarantine-percent PERCENT",
            "records the run newly quarantined, as a percentage of those it delivered; decimals allowed "
            "(default 5)",
        ),
        (
            "--audit-max-row-drop-percent PERCENT",
            "rows a Gold table may lose in one run, as a percentage of its published rows (default 10)",
        ),
        (
            "--audit-max-staleness-hours HOURS",
            "how old the newest version in a Silver table may be at the audit; 0: not checked (default 0)",
        ),
    ]


@pytest.mark.parametrize("value", ["0.5", "0", "100", "12.25"])
def test_a_quarantine_threshold_takes_decimals_from_0_to_100(value: str) -> None:
    from etl.audit.checks import AuditThresholds

    for command in ("run", "audits"):
        args = _parser().parse_args([command, "--audit-max-quarantine-percent", value])
        assert AuditThresholds.from_arguments(args).max_quarantine_percent == float(value)


@pytest.mark.parametrize("value", ["-0.5", "100.5", "half", "nan", "inf"])
def test_a_quarantine_threshold_outside_0_to_100_is_refused_by_the_parser_in_one_line(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--audit-max-quarantine-percent", value])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "lakehouse run: error: argument --audit-max-quarantine-percent: must be a number from 0 to 100 "
        f"(decimals allowed); got {value!r} ("
    )


def test_a_whole_audit_threshold_below_zero_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["run", "--audit-min-records", "-1"])
    assert (
        "argument --audit-min-records: must be a whole number, 0 or more; got -1" in capsys.readouterr().err
    )


def test_a_users_situation_is_one_line_without_the_verbose_hint_and_a_fault_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The logs' set-up points a handler at the stderr of the first in-process call (another test's).
    monkeypatch.setattr("local.cli._configure_logs", lambda verbose: None)
    assert main(["query", "SELECT 1", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: no tables in {tmp_path} yet: run `lakehouse run` first\n"
    assert main(["audits", "--even-if-waiting", "--data-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: --even-if-waiting goes with --drop-branch RUN\n"

    def broken() -> str:
        raise KeyError("drawing")

    monkeypatch.setattr("local.diagram.architecture", broken)
    assert main(["diagram"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: 'drawing'",
        "(run with --verbose for the full trace)",
    ]


def land_order_run(bronze: Path, run_id: str, day: int) -> None:
    record = (
        f'{{"order_id": {day}, "customer_id": "c1", "status": "paid", "amount": 5, "currency": "EUR", '
        f'"created_at": "2026-01-0{day}T00:00:00Z", "updated_at": "2026-01-0{day}T05:00:00Z"}}'
    )
    with FixedPagesApi([[record]]) as api:
        ingest(
            IngestionSettings(SourceSettings(api.url), str(bronze), "orders"),
            run_id,
            datetime(2026, 2, day, tzinfo=UTC),
        )


def test_a_refused_rebuild_prints_only_the_line_saying_what_to_do(tmp_path: Path) -> None:
    bronze = tmp_path / "data" / "bronze"
    land_order_run(bronze, "r1", day=1)
    land_order_run(bronze, "r2", day=2)
    rewind_watermark(LocalStore(bronze), BronzeLayout("orders"), "2026-01-01T05:00:00Z", "rewind")

    behind = lakehouse("rebuild", "--data-dir", str(tmp_path / "data"))

    assert behind.returncode == 1
    assert behind.stdout == ""  # nothing announced: nothing was rebuilt
    assert behind.stderr.splitlines() == [
        "error: the orders watermark (2026-01-01T05:00:00Z) is behind its runs in Bronze "
        "(2026-01-02T05:00:00Z): a repair or rewind left a window to ingest again, and a rebuild now "
        "would leave its records out. Nothing was dropped. Run the pipeline first, then rebuild"
    ]

    land_order_run(bronze, "r3", day=3)  # the window ingested again; then an object is damaged
    (page,) = bronze.glob("orders/*/run_id=r3/page-*.jsonl.gz")
    page.write_bytes(page.read_bytes()[:20])

    damaged = lakehouse("rebuild", "--data-dir", str(tmp_path / "data"))

    assert damaged.returncode == 1
    assert damaged.stdout == ""
    (line,) = damaged.stderr.splitlines()
    assert line.startswith(f"error: Bronze object {page} of run r3 is damaged")
    assert line.endswith(
        "then run the pipeline, which ingests its window again; rebuild after that if you still need to"
    )


def test_suggested_commands_are_written_as_the_user_can_run_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / ".venv" / "bin" / "lakehouse"
    script.parent.mkdir(parents=True)
    script.write_text("")
    suggestion = "audit failed: inspect it with `lakehouse audits --branch b1`"
    # Started as .venv/bin/lakehouse (make run) while no lakehouse is on PATH: the path it was started by.
    monkeypatch.setattr(sys, "argv", [".venv/bin/lakehouse", "run"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert as_invoked(suggestion) == "audit failed: inspect it with `.venv/bin/lakehouse audits --branch b1`"
    # The lakehouse on PATH is this one: its name.
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    monkeypatch.setattr(shutil, "which", lambda name: str(script))
    assert as_invoked(suggestion) == suggestion
    # python -m local: the messages' own spelling.
    monkeypatch.setattr(sys, "argv", ["/repo/local/__main__.py", "run"])
    assert as_invoked(suggestion) == suggestion


def test_a_rewind_to_a_text_that_is_not_a_date_time_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["bronze", "rewind", "--dataset", "orders", "--to", "yesterday"])
    assert (
        "must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z, got 'yesterday'"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--gold-refresh", "bogus"],
        ["run", "--gold", "incremental"],  # an option by part of its name is not taken for another
        ["run", "--seed", "abc"],
        [],
    ],
)
def test_a_bad_option_is_one_line_saying_where_the_options_are(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    assert err.startswith("lakehouse") and "--help` lists the options" in err


# A Spark write whose task fails, in a session the command has quieted (as `lakehouse run` does without
# --verbose): Spark's Utils logs such a task's stack trace at ERROR, through a logger of its own.
FAILING_WRITE = """
import sys
from local.cli import _quiet
from local.session import build_session
spark = _quiet(build_session(sys.argv[1], app_name="quiet"), verbose=False)
failing = spark.sql("SELECT CAST(raise_error('the task broke') AS STRING) AS x FROM range(3)")
try:
    failing.write.parquet(sys.argv[2])
except Exception as error:
    print(type(error).__name__)
"""


@pytest.mark.spark
def test_without_verbose_a_failing_spark_task_writes_nothing_to_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FAILING_WRITE, str(tmp_path / "warehouse"), str(tmp_path / "out")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.strip() == "Py4JJavaError"  # the failure reaches the command, to report in one line
    assert done.stderr == ""


@pytest.mark.spark
def test_a_reader_that_stops_early_ends_the_command_without_an_error(tmp_path: Path) -> None:
    (tmp_path / "warehouse").mkdir()
    query = subprocess.Popen(
        [sys.executable, "-m", "local", "query", "SELECT id FROM range(200000)", "--data-dir", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert query.stdout is not None and query.stderr is not None
    assert query.stdout.readline().split() == ["id"]  # as `| head -1` would: one line, then gone
    query.stdout.close()
    assert query.wait(timeout=300) == 1
    assert query.stderr.read() == ""  # no "error: [Errno 32] Broken pipe", no trace
