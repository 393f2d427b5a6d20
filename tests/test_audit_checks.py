"""The audits' declarations, thresholds and metrics, without Spark."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from etl import metrics, pipeline, registry
from etl.audit.checks import DATASET_AUDITS, SWITCHED_OFF, AuditResult, AuditThresholds, shown_percent
from etl.audit.job import DROP_BRANCH, EVEN_IF_WAITING, AuditArguments, AuditFailed, parse_args, run_metrics
from etl.audit.kept_branches import dropped_line, table_names
from etl.catalog import CATALOG
from etl.spark.branches import WAP_BRANCH, BadBranchName, on_branch, require_branch_name
from local.report import audit_table


def test_thresholds_travel_as_job_arguments_and_back() -> None:
    thresholds = AuditThresholds(min_records=5, empty_after_runs=0, max_quarantine_percent=2.25)
    argv = ["--silver-database", "s", "--gold-database", "g", "--branch", "run-1"]
    args = parse_args([*argv, *(part for item in thresholds.arguments().items() for part in item)])
    assert args.thresholds == thresholds
    assert args.publish_anyway is False
    assert parse_args(argv).thresholds == AuditThresholds()
    assert parse_args([*argv, "--publish-anyway", "true"]).publish_anyway is True
    # The Audit step's settings are exactly what the job reads.
    assert set(pipeline.AUDIT.settings) >= set(AuditThresholds().arguments())


def test_the_audit_job_started_by_hand_drops_a_branch_instead_of_auditing_one() -> None:
    databases = ["--silver-database", "s", "--gold-database", "g", "--publish-anyway", "false"]
    dropping = parse_args([*databases, "--drop-branch", "run-2"])
    assert (dropping.branch, dropping.drop_branch, dropping.even_if_waiting) == ("run-2", True, False)
    forced = parse_args([*databases, "--drop-branch", "run-2", "--even-if-waiting", "true"])
    assert (forced.branch, forced.drop_branch, forced.even_if_waiting) == ("run-2", True, True)
    auditing = parse_args([*databases, "--branch", "run-2"])
    assert (auditing.drop_branch, auditing.even_if_waiting) == (False, False)
    with pytest.raises(BadBranchName):
        parse_args([*databases, "--drop-branch", "main"])


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ([], "one of the arguments --branch --drop-branch is required"),
        (["--branch", "run-1", "--drop-branch", "run-1"], "not allowed with argument"),
        (
            ["--branch", "run-1", "--even-if-waiting", "true"],
            "--even-if-waiting true goes with --drop-branch RUN",
        ),
        (["--drop-branch", "run-1", "--even-if-waiting", "yes"], "invalid choice: 'yes'"),
        (
            ["--drop-branch", "run-1", "--publish-anyway", "true"],
            "--drop-branch drops a branch and --publish-anyway true publishes one",
        ),
    ],
)
def test_the_audit_job_refuses_arguments_that_ask_two_things_or_nothing_in_one_line(
    arguments: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--silver-database", "s", "--gold-database", "g", *arguments])
    message = capsys.readouterr().err.splitlines()[-1]
    assert message.startswith("audit: error: ") and error in message


# The Audit job's default arguments, as the stack sets them (tests/infra/test_glue_jobs.py checks the stack).
JOB_DEFAULTS = [
    *("--silver-database", "lakehouse_dev_silver", "--gold-database", "lakehouse_dev_gold"),
    *("--publish-anyway", "false", "--JOB_NAME", "lakehouse-dev-audit"),
    *(part for item in AuditThresholds().arguments().items() for part in item),
]
README = Path(__file__).resolve().parent.parent / "README.md"


def job_run(arguments: dict[str, str], run_id: str = "20261127T081623Z-f066f73c") -> AuditArguments:
    """The Audit job as `aws glue start-job-run --arguments` starts it: the run's arguments over the job's
    defaults (Glue passes both as `--name value`), `<run id>` filled in."""
    given = {name: value.replace("<run id>", run_id) for name, value in arguments.items()}
    return parse_args([*JOB_DEFAULTS, *(part for item in given.items() for part in item)])


def test_the_readme_starts_the_audit_job_in_aws_with_arguments_it_parses() -> None:
    section = README.read_text(encoding="utf-8").split("### When an audit fails in AWS\n", 1)[1]
    section = section.split("\n### ", 1)[0]
    started = [json.loads(found) for found in re.findall(r"--arguments '(\{.*?\})'", section)]
    publish, drop = (job_run(arguments) for arguments in started)
    assert (publish.branch, publish.publish_anyway, publish.drop_branch) == (
        "20261127T081623Z-f066f73c",
        True,
        False,
    )
    assert (drop.branch, drop.drop_branch, drop.even_if_waiting) == ("20261127T081623Z-f066f73c", True, True)
    # Every argument the README names is one the job reads (parse_known_args would skip a misspelt one).
    known = {pipeline.BRANCH, pipeline.PUBLISH_ANYWAY, DROP_BRANCH, EVEN_IF_WAITING}
    assert {name for arguments in started for name in arguments} <= known
    assert re.findall(r'jobNames --json .*\["(\w+)"\]', section) == [pipeline.AUDIT.name]


def test_a_failed_audit_in_aws_suggests_the_audit_job_arguments_that_publish_or_drop_the_branch() -> None:
    message = str(AuditFailed("run-2", [FAILED], in_aws=True))
    assert "\n" not in message and "lakehouse" not in message  # no local command
    assert message.startswith("audit failed on branch run-2: quarantine_rate on silver.orders FAILED: ")
    publish, drop = (job_run(json.loads(found)) for found in re.findall(r"\{.*?\}", message))
    assert (publish.branch, publish.publish_anyway, publish.drop_branch) == ("run-2", True, False)
    assert (drop.branch, drop.drop_branch, drop.even_if_waiting) == ("run-2", True, True)


def test_a_quarantine_threshold_keeps_its_decimals_in_the_suggested_options_and_a_whole_one_has_none() -> (
    None
):
    assert (
        AuditThresholds(max_quarantine_percent=0.5).options_changed() == " --audit-max-quarantine-percent 0.5"
    )
    assert (
        AuditThresholds(max_quarantine_percent=12.0).options_changed() == " --audit-max-quarantine-percent 12"
    )
    assert AuditThresholds(max_quarantine_percent=5.0).options_changed() == ""  # the default, 5
    # As the stack config sets it in AWS: a whole number, the job argument unchanged.
    assert AuditThresholds().arguments()["--audit-max-quarantine-percent"] == "5"


def test_a_threshold_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="max_quarantine_percent"):
        AuditThresholds(max_quarantine_percent=101)
    with pytest.raises(ValueError, match="min_records"):
        AuditThresholds(min_records=-1)


def test_branch_names_are_run_ids_and_never_main() -> None:
    assert require_branch_name("20261127T081623Z-f066f73c") == "20261127T081623Z-f066f73c"
    for name in ("main", "x'; DROP TABLE y", "", "a b"):
        with pytest.raises(BadBranchName):
            require_branch_name(name)


def test_every_declared_table_is_guarded() -> None:
    assert all(dataset.audits for dataset in registry.datasets())
    assert all(model.audits for model in registry.gold_models())
    assert {type(audit) for audit in DATASET_AUDITS} <= {
        type(audit) for dataset in registry.datasets() for audit in dataset.audits
    }


FAILED = AuditResult(
    "quarantine_rate", "silver.orders", 80.0, "<= 5%", False, "%", "8 of 10 records this run"
)
PASSED = AuditResult(
    "no_null_keys", "gold.daily_sales", 0, "= 0", True, " rows", "null order_date or currency"
)


# What the suggested `lakehouse run --publish-anyway` does besides publishing the kept branch.
ALSO_INGESTS = (
    " (a new run: it also ingests what the source has new since this one, and publishes it with the rest)"
)


def test_a_failure_is_one_line_naming_the_audit_the_value_and_the_threshold() -> None:
    message = str(AuditFailed("run-2", [FAILED, PASSED]))
    assert "\n" not in message
    assert message.startswith(
        "audit failed on branch run-2: quarantine_rate on silver.orders FAILED: 80% "
        "(8 of 10 records this run), threshold <= 5%. main is unchanged"
    )
    assert "no_null_keys" not in message
    assert message.endswith(
        "`lakehouse audits --branch run-2`, fix the cause and run again, or publish "
        "anyway with `lakehouse run --publish-anyway`" + ALSO_INGESTS
    )


def test_the_commands_a_failure_suggests_name_the_runs_data_dir_and_source() -> None:
    message = str(AuditFailed("run-2", [FAILED], " --data-dir /tmp/d", " --source-url http://127.0.0.1:9"))
    assert "`lakehouse audits --branch run-2 --data-dir /tmp/d`" in message
    assert message.endswith(
        "`lakehouse run --publish-anyway --data-dir /tmp/d --source-url http://127.0.0.1:9`" + ALSO_INGESTS
    )


def test_the_commands_a_failure_suggests_measure_with_the_thresholds_the_run_used() -> None:
    thresholds = AuditThresholds(max_quarantine_percent=0, max_staleness_hours=48)
    assert thresholds.options_changed() == " --audit-max-quarantine-percent 0 --audit-max-staleness-hours 48"
    assert AuditThresholds().options_changed() == ""
    message = str(AuditFailed("run-2", [FAILED], " --data-dir /tmp/d", "", thresholds.options_changed()))
    assert "`lakehouse audits --branch run-2 --data-dir /tmp/d --audit-max-quarantine-percent 0 " in message
    assert message.endswith(
        "--publish-anyway --data-dir /tmp/d --audit-max-quarantine-percent 0 --audit-max-staleness-hours 48`"
        + ALSO_INGESTS
    )


def test_audit_results_are_published_as_emf_metrics_of_the_audit_step() -> None:
    published: list[metrics.RunMetrics] = []
    with metrics.published_run("Lakehouse/dev", pipeline.AUDIT.name, publish=published.append) as run:
        run.counts.update(run_metrics([FAILED, PASSED]))
    document = json.loads(published[0].line())
    assert document["Step"] == "Audit"
    assert document[metrics.AUDITS_FAILED] == 1
    assert document["Audit.quarantine_rate.silver.orders"] == 80.0
    assert document["Audit.no_null_keys.gold.daily_sales"] == 0
    names = {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {metrics.AUDITS_FAILED, "Audit.quarantine_rate.silver.orders"} <= names


# Freshness as the default thresholds leave it (max_staleness_hours 0).
SWITCHED_OFF_FRESHNESS = AuditResult(
    "freshness", "silver.orders", 0, "off (0 h)", True, not_measured=SWITCHED_OFF
)


def test_a_switched_off_audit_shows_as_not_measured_never_as_passed() -> None:
    off = SWITCHED_OFF_FRESHNESS
    assert (off.verdict, off.measured) == ("not measured", "switched off")
    assert off.line() == "freshness on silver.orders not measured: switched off, threshold off (0 h)"
    header, _, *rows = audit_table([PASSED, off]).splitlines()
    assert [row.rsplit("  ", 1)[1].strip() for row in rows] == ["passed", "not measured"]
    assert rows[1].split()[:4] == ["freshness", "silver.orders", "switched", "off"]
    assert header.split()[-1] == "result"
    with pytest.raises(ValueError, match="an audit not measured cannot fail"):
        AuditResult("freshness", "silver.orders", 0, "off (0 h)", False, not_measured=SWITCHED_OFF)


def test_an_audit_not_measured_publishes_no_value_that_would_read_as_measured() -> None:
    counts = run_metrics([FAILED, PASSED, SWITCHED_OFF_FRESHNESS])
    assert counts == {
        metrics.AUDITS_FAILED: 1,
        "Audit.quarantine_rate.silver.orders": 80.0,
        "Audit.no_null_keys.gold.daily_sales": 0,
    }


@pytest.mark.parametrize(
    ("rate", "bound", "text"),
    [
        (12.3456, 5.0, "12.35%"),  # far from the bound: two decimals
        (0.254, 0.25, "0.254%"),  # a failing rate is never shown as the bound itself
        (0.1255, 0.126, "0.126%"),  # nor a passing one above it (0.13 with two decimals)
        (0.25, 0.25, "0.25%"),
        (7.0, 5.0, "7%"),
    ],
)
def test_a_measured_percentage_is_shown_on_the_side_of_the_bound_it_is_on(
    rate: float, bound: float, text: str
) -> None:
    result = AuditResult(
        "quarantine_rate", "silver.orders", shown_percent(rate, bound), "", rate <= bound, "%"
    )
    assert result.measured == text


def test_a_count_of_one_is_written_in_the_singular() -> None:
    def measured(value: float, unit: str) -> str:
        return AuditResult("records_ingested", "silver.orders", value, ">= 0", True, unit).measured

    assert measured(1, " records") == "1 record"
    assert measured(2, " records") == "2 records"
    assert measured(1, " rows") == "1 row"
    assert measured(1, "%") == "1%"


def test_the_kept_branch_messages_name_tables_as_users_do_without_the_catalog() -> None:
    silver, gold = f"{CATALOG}.silver.orders", f"{CATALOG}.gold.daily_sales"
    assert table_names([silver, gold]) == "silver.orders, gold.daily_sales"
    assert dropped_line("r", [silver]) == "Dropped branch r from 1 table: silver.orders"


class _Conf:
    """A session's settings; `broken` as a session whose JVM died."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.broken = False

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def set(self, key: str, value: str) -> None:
        if self.broken:
            raise ConnectionRefusedError(111, "Connection refused")
        self.values[key] = value

    def unset(self, key: str) -> None:
        if self.broken:
            raise ConnectionRefusedError(111, "Connection refused")
        self.values.pop(key, None)


class _Session:
    def __init__(self) -> None:
        self.conf = _Conf()


def test_on_a_branch_the_setting_is_restored_and_a_dead_session_does_not_hide_the_error_that_stopped_it() -> (
    None
):
    session: Any = _Session()
    with on_branch(session, "run-1"):
        assert session.conf.values == {WAP_BRANCH: "run-1"}
    assert session.conf.values == {}
    with pytest.raises(RuntimeError, match="the JVM died"), on_branch(session, "run-2"):
        session.conf.broken = True
        raise RuntimeError("the JVM died")
