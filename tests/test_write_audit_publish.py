"""Write-audit-publish on real Iceberg: a run writes Silver and Gold to its own branch, and `main` moves only
when the declared audits pass.

The runs go through the local runner (ingestion from a small API on 127.0.0.1, the real Silver, Gold and
Audit jobs) in the shared Spark session, each test in its own databases.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from etl import registry
from etl.audit import job as audit_job
from etl.audit.checks import SWITCHED_OFF, AuditThresholds, Freshness
from etl.audit.job import AuditFailed, AuditSummary, measure
from etl.audit.kept_branches import BranchWaiting, kept_branches, moved_on
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.bronze.source import SourceError
from etl.catalog import CATALOG, table_identifier
from etl.gold.job import GoldModelFailed
from etl.spark.branches import MAIN, branch_snapshots, create_branch, on_branch, publish
from etl.spark.jobs import ensure_tables
from etl.spark.maintenance import MaintenancePolicy, expire_snapshots
from etl.timestamps import utc_now
from local.cli import _parser, earlier_branches, stopped_run
from local.report import run_summary
from local.runner import LocalLayout, LocalRunner, PipelineRun
from tests.fixed_api import FixedPagesApi

pytestmark = pytest.mark.spark


def order(order_id: int, amount: float = 10.0, status: str = "paid") -> str:
    return json.dumps(
        {
            "order_id": order_id,
            "customer_id": f"c{order_id % 3}",
            "status": status,
            "amount": amount,
            "currency": "EUR",
            "created_at": f"2026-05-0{1 + order_id % 5}T00:00:00Z",
            "updated_at": "2026-05-06T00:00:00Z",
        }
    )


GOOD = [order(i) for i in range(1, 11)]
# Eight of ten records break a rule (a negative amount): 80% quarantined.
BAD = [order(i, amount=-1.0) for i in range(11, 19)] + [order(19), order(20)]


class Lakehouse:
    """A data directory and its own Silver and Gold databases in the shared test catalog."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.spark = spark
        self.layout = LocalLayout(
            root, silver_database=f"wap_silver_{suffix}", gold_database=f"wap_gold_{suffix}"
        )
        # Customers exist, empty: the test source serves no customers.
        ensure_tables(spark, self.layout.silver_database, registry.dataset("customers").tables)

    def run(
        self,
        pages: list[list[str]],
        run_id: str,
        audits: AuditThresholds | None = None,
        customers: list[list[str]] | None = None,
        **options: Any,
    ) -> PipelineRun:
        """A pipeline run on a source serving `pages` of orders and `customers` (default: none)."""
        others = {registry.dataset("customers").source.path: customers} if customers else None
        with FixedPagesApi(pages, other_paths=others) as api:
            settings = IngestionSettings(
                SourceSettings(api.url, backoff_base_seconds=0.0), str(self.layout.bronze), "orders"
            )
            runner = LocalRunner(
                self.layout, settings, spark_factory=lambda: self.spark, audits=audits, **options
            )
            self.runner = runner  # the last run's, to see what a failed run left
            return runner.run(run_id=run_id)

    def table(self, name: str) -> str:
        layer, table = name.split(".")
        database = self.layout.silver_database if layer == "silver" else self.layout.gold_database
        return f"{database}.{table}"

    def main_rows(self, name: str) -> list[tuple[Any, ...]]:
        """The table's rows as readers of `main` see them."""
        with on_branch(self.spark, None):
            return sorted((tuple(row) for row in self.spark.table(self.table(name)).collect()), key=repr)

    def heads(self, name: str) -> dict[str, int]:
        return branch_snapshots(self.spark, self.table(name))


@pytest.fixture
def lakehouse(spark: SparkSession, tmp_path: Path) -> Iterator[Lakehouse]:
    yield Lakehouse(spark, tmp_path)


TABLES = ("silver.orders", "silver.orders_quarantine", "silver.ingestion_runs", "gold.daily_sales")


def test_a_rejected_record_delivered_again_does_not_fail_the_next_runs_quarantine_audit(
    lakehouse: Lakehouse,
) -> None:
    # The source re-sends the record at its watermark on every run; here that record is a rejected one.
    rejected = order(99, amount=-1.0)
    first = lakehouse.run([[*(order(i) for i in range(1, 30)), rejected]], run_id="run-1")  # 1 of 30
    assert first.result("Audit").failed == ()
    quarantined = lakehouse.main_rows("silver.orders_quarantine")

    again = lakehouse.run([[rejected]], run_id="run-2")

    audit: AuditSummary = again.result("Audit")
    assert audit.failed == ()
    orders = f"{lakehouse.layout.silver_database}.orders"
    [rate] = [r for r in audit.results if (r.audit, r.table) == ("quarantine_rate", orders)]
    assert (rate.value, rate.detail) == (0, "0 of 1 records this run newly quarantined")
    assert lakehouse.main_rows("silver.orders_quarantine") == quarantined
    assert len(quarantined) == 1


def test_a_bad_batch_never_reaches_main_and_a_good_one_does(lakehouse: Lakehouse) -> None:
    good = lakehouse.run([GOOD], run_id="run-good")
    audit: AuditSummary = good.result("Audit")
    assert audit.failed == () and len(audit.results) == 15
    assert {f"{lakehouse.layout.silver_database}.orders"} <= set(audit.published)
    assert sorted(row[0] for row in lakehouse.main_rows("silver.orders")) == list(range(1, 11))
    assert all(set(lakehouse.heads(name)) <= {MAIN} for name in TABLES)  # the branch was dropped
    # No record was rejected: the quarantine was never written, so it has no branch nor any snapshot.
    assert lakehouse.heads("silver.orders_quarantine") == {}
    # Freshness is switched off by default (auditMaxStalenessHours 0): not measured, not counted as passed.
    assert "13 of 13 audits passed (2 not measured: switched off);" in run_summary(good)
    switched_off = sorted(r.table.split(".")[1] for r in audit.results if r.not_measured == SWITCHED_OFF)
    assert switched_off == ["customers", "orders"]
    published = {name: lakehouse.main_rows(name) for name in TABLES}
    heads = {name: lakehouse.heads(name).get(MAIN) for name in TABLES}

    with pytest.raises(AuditFailed) as failure:
        lakehouse.run([BAD], run_id="run-bad")
    message = str(failure.value)
    assert "\n" not in message
    assert (
        f"quarantine_rate on {lakehouse.layout.silver_database}.orders FAILED: "
        "80% (8 of 10 records this run newly quarantined), threshold <= 5%"
    ) in message
    # main is unchanged, to the snapshot; the branch keeps the run for inspection.
    for name in TABLES:
        assert lakehouse.main_rows(name) == published[name]
        assert lakehouse.heads(name).get(MAIN) == heads[name]
    assert "run-bad" in lakehouse.heads("silver.orders")
    on_branch_rows = lakehouse.spark.sql(
        f"SELECT order_id FROM {lakehouse.table('silver.orders')} VERSION AS OF 'run-bad'"
    )
    assert sorted(row[0] for row in on_branch_rows.collect()) == [*range(1, 11), 19, 20]
    assert kept_branches(
        lakehouse.spark, lakehouse.layout.silver_database, lakehouse.layout.gold_database
    ) == ["run-bad"]
    # The session reads main again after the failed run.
    assert lakehouse.spark.conf.get("spark.wap.branch", None) is None

    # Snapshot expiry keeps what the kept branch needs.
    expire_snapshots(
        lakehouse.spark,
        lakehouse.layout.silver_database,
        "orders",
        MaintenancePolicy(snapshot_retention=timedelta(0), retain_last=1),
        utc_now(),
    )
    assert on_branch_rows.count() == 12


def records_ingested(run: PipelineRun) -> dict[str, str]:
    """What the run's records_ingested audits measured, per dataset."""
    audit: AuditSummary = run.result("Audit")
    return {r.table.split(".")[1]: r.measured for r in audit.results if r.audit == "records_ingested"}


def test_a_retry_after_a_failed_audit_publishes_what_the_failed_run_held_back(lakehouse: Lakehouse) -> None:
    audits = AuditThresholds(empty_after_runs=1)
    first = lakehouse.run([GOOD], run_id="run-1", audits=audits)
    assert records_ingested(first)["orders"] == "10 records"  # one ingestion run: nothing to add
    # The source suddenly returns nothing: an empty run after a non-empty one.
    with pytest.raises(
        AuditFailed, match=r"records_ingested on \S+\.orders FAILED: 0 records \(after 1 runs"
    ):
        lakehouse.run([[]], run_id="run-2", audits=audits)
    ledger_before = lakehouse.main_rows("silver.ingestion_runs")
    databases = (lakehouse.spark, lakehouse.layout.silver_database, lakehouse.layout.gold_database)
    assert moved_on(*databases, "run-2") == []  # still measurable against main

    more = [order(i) for i in range(21, 26)]
    retry = lakehouse.run([more], run_id="run-3", audits=audits)
    assert retry.result("Audit").failed == ()
    assert sorted(row[0] for row in lakehouse.main_rows("silver.orders")) == [*range(1, 11), *range(21, 26)]
    # The empty runs held back by run-2 are published with run-3: main's ledger lists each run (one row
    # per dataset) once.
    ledger = [(row[0], row[7]) for row in lakehouse.main_rows("silver.ingestion_runs")]
    assert len(ledger) == len(ledger_before) + 4 and len(set(ledger)) == len(ledger)
    assert ("run-2-001", "orders") in ledger
    # run-2's kept branch (on the ledger alone: the run wrote nothing else) is out of date now: main moved
    # on when run-3 published.
    assert "run-2" in kept_branches(*databases)
    assert moved_on(*databases, "run-2") == [f"{CATALOG}.{lakehouse.table('silver.ingestion_runs')}"]
    # The summary says where Silver's records came from: this run's ingestion and the one held back
    # (customers, orders); the audit of the records ingested says it judged both.
    assert re.search(
        r"\ningestion runs +1 +1\nrecords ingested +0 +5\nBronze runs read by Silver +2 +2\n"
        r"records read by Silver +0 +5\n",
        run_summary(retry),
    )
    assert records_ingested(retry) == {
        "customers": "0 records (in 2 ingestion runs not on main yet)",
        "orders": "5 records (in 2 ingestion runs not on main yet)",
    }
    revenue = lakehouse.spark.sql(
        f"SELECT sum(gross_revenue) FROM {lakehouse.table('gold.daily_sales')}"
    ).first()
    assert revenue is not None and float(revenue[0]) == 150.0


def test_publish_anyway_publishes_a_failed_branch_and_the_summary_says_so(lakehouse: Lakehouse) -> None:
    run = lakehouse.run([BAD], run_id="run-anyway", publish_anyway=True)
    audit: AuditSummary = run.result("Audit")
    assert [result.audit for result in audit.failed] == ["quarantine_rate"]
    assert len(lakehouse.main_rows("silver.orders_quarantine")) == 8
    assert "published anyway (--publish-anyway): quarantine_rate" in run_summary(run)
    assert "run-anyway" not in lakehouse.heads("silver.orders")


def test_the_gold_audits_catch_null_keys_revenue_that_does_not_add_up_lost_rows_and_stale_data(
    lakehouse: Lakehouse,
) -> None:
    lakehouse.run([GOOD], run_id="run-1")
    daily_sales = lakehouse.table("gold.daily_sales")
    with on_branch(lakehouse.spark, "tampered"):
        # A row with a null key and revenue no order has; every other row gone.
        lakehouse.spark.sql(f"DELETE FROM {daily_sales} WHERE order_date > DATE '2026-05-01'")
        lakehouse.spark.sql(f"INSERT INTO {daily_sales} VALUES (NULL, 'EUR', 1, 1000.00, 0, 0)")
    results = {
        (r.audit, r.table.split(".")[1]): r
        for r in measure(
            lakehouse.spark,
            lakehouse.layout.silver_database,
            lakehouse.layout.gold_database,
            "tampered",
            AuditThresholds(max_staleness_hours=24),
            now=utc_now(),
        )
    }
    failed = sorted(key for key, result in results.items() if not result.passed)
    assert failed == [
        ("freshness", "customers"),  # no rows at all
        ("freshness", "orders"),
        ("no_null_keys", "daily_sales"),
        ("row_count_drop", "daily_sales"),
        ("sum_matches_silver", "daily_sales"),
    ]
    assert results[("no_null_keys", "daily_sales")].value == 1
    assert results[("sum_matches_silver", "daily_sales")].measured == (  # 1,000 added, 80 of 100 gone
        f"920 apart (sum of gross_revenue 1,020.00, {lakehouse.layout.silver_database}.orders 100.00)"
    )
    assert results[("row_count_drop", "daily_sales")].measured == "60% (5 -> 2 rows)"
    # The other Gold tables were not touched on the branch: they are measured on main, and pass.
    assert results[("sum_matches_silver", "customer_summary")].passed


@pytest.mark.parametrize("new_table", [False, True], ids=["published-table", "new-table"])
def test_a_gold_table_the_failed_gold_step_left_behind_fails_its_audits_and_is_not_published(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch, new_table: bool
) -> None:
    lakehouse.run([GOOD], run_id="run-1")
    models, sql = registry.gold_models(), registry.gold_sql
    daily_sales = next(model for model in models if model.table.name == "daily_sales")
    failing = daily_sales
    if new_table:  # a model just added: the failed run leaves only the empty start of its branch
        failing = replace(daily_sales, table=replace(daily_sales.table, name="daily_sales_new"))
        monkeypatch.setattr(registry, "gold_models", lambda: (*models, failing))
    broken = "SELECT * FROM ({}) WHERE raise_error('the model broke') IS NULL"
    monkeypatch.setattr(
        registry,
        "gold_sql",
        lambda model: broken.format(sql(daily_sales)) if model is failing else sql(model),
    )
    with pytest.raises(GoldModelFailed, match="the model broke"):
        lakehouse.run([[order(21, amount=5.0)]], run_id="run-2")
    # Silver merged order 21 on the branch; Gold wrote the other tables there, not the failing one.
    results = measure(
        lakehouse.spark,
        lakehouse.layout.silver_database,
        lakehouse.layout.gold_database,
        "run-2",
        AuditThresholds(),
    )
    behind = [r for r in results if r.table.endswith(f".{failing.table.name}")]
    silver_orders = f"{lakehouse.layout.silver_database}.orders"
    assert [(r.passed, r.measured) for r in behind] == [
        (
            False,
            f"1 Silver table ({silver_orders} changed since the table was built: "
            "did the run's Gold step finish?)",
        )
    ] * 3
    others = [r for r in results if r.table.startswith(lakehouse.layout.gold_database) and r not in behind]
    assert len(others) == (9 if new_table else 6) and all(r.passed and not r.not_measured for r in others)
    with pytest.raises(AuditFailed):
        audit_job.run(
            lakehouse.spark,
            audit_job.parse_args(
                [
                    "--silver-database", lakehouse.layout.silver_database,
                    "--gold-database", lakehouse.layout.gold_database,
                    "--branch", "run-2",
                ]
            ),
        )  # fmt: skip
    assert "run-2" in lakehouse.heads("silver.orders")  # nothing published


def test_a_run_that_fails_says_where_what_it_wrote_waits_and_the_way_forward(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SourceError):  # the first dataset's page is not JSON: the run stops in its Bronze
        lakehouse.run([GOOD], run_id="run-0", customers=[["{"]])
    assert stopped_run(lakehouse.runner, " --data-dir d") == (
        "Run run-0 stopped before writing to any table: fix the cause, then `lakehouse run --data-dir d`."
    )
    published = lakehouse.run([GOOD], run_id="run-1")
    assert lakehouse.runner.kept_branches() == {}  # published, and the branch dropped
    assert published.result("Audit").other_branches == ()
    sql = registry.gold_sql
    broken = "SELECT * FROM ({}) WHERE raise_error('the model broke') IS NULL"
    monkeypatch.setattr(
        registry,
        "gold_sql",
        lambda model: broken.format(sql(model)) if model.table.name == "daily_sales" else sql(model),
    )

    with pytest.raises(GoldModelFailed):
        lakehouse.run([[order(21, amount=5.0)]], run_id="run-2")

    assert lakehouse.runner.kept_branches() == {"run-2": False}  # waiting: main has not moved on
    thresholds = " --audit-max-quarantine-percent 9"  # the run's own: the commands measure as it would
    assert stopped_run(lakehouse.runner, " --data-dir d", "http://127.0.0.1:1", thresholds) == (
        "Run run-2 stopped: what it wrote waits on branch run-2, not published to main; `lakehouse audits "
        "--branch run-2 --data-dir d --audit-max-quarantine-percent 9` measures it. Nothing is lost: fix the "
        "cause and `lakehouse run --data-dir d --source-url http://127.0.0.1:1 "
        "--audit-max-quarantine-percent 9` (a new run, which merges this one's records again); "
        "`lakehouse audits --drop-branch run-2 --even-if-waiting --data-dir d` drops the branch."
    )
    assert "run-2" in lakehouse.heads("silver.orders")
    daily_sales = lakehouse.heads("gold.daily_sales")
    assert daily_sales["run-2"] == daily_sales[MAIN]  # its branch was made, its write failed

    monkeypatch.setattr(registry, "gold_sql", sql)
    published = lakehouse.run([[order(22, amount=5.0)]], run_id="run-3")  # the next run, after the fix

    assert published.result("Audit").other_branches == ("run-2",)  # as publishing found the tables
    assert lakehouse.runner.kept_branches() == {"run-2": True}  # out of date: main moved on
    assert earlier_branches(lakehouse.runner.kept_branches(), " --data-dir d") == (
        "Branch run-2, left by an earlier run, is out of date (main moved on since it was made): "
        "`lakehouse audits --drop-branch run-2 --data-dir d` drops it."
    )
    assert earlier_branches({"run-2": False}) == (
        "Branch run-2, left by an earlier run, still waits to be published: `lakehouse audits --branch "
        "run-2` shows why it was held back."
    )
    assert earlier_branches({"run-1": True, "run-2": False}) == (
        "Branches left by earlier runs: run-1 (out of date), run-2 (waiting). `lakehouse audits` shows the "
        "newest one waiting; `lakehouse audits --drop-branch <run>` drops one."
    )
    assert earlier_branches({"run-1": True, "run-2": True}) == (  # none waits: nothing to show
        "Branches left by earlier runs: run-1 (out of date), run-2 (out of date). `lakehouse audits "
        "--drop-branch <run>` drops one."
    )


def test_a_gold_table_the_run_kept_is_not_measured_again_and_one_it_rebuilt_is(lakehouse: Lakehouse) -> None:
    lakehouse.run([GOOD], run_id="run-1")
    nothing_new = lakehouse.run([[]], run_id="run-2").result("Audit")
    kept = [r for r in nothing_new.results if r.table.startswith(lakehouse.layout.gold_database)]
    assert len(kept) == 9
    assert all(r.passed and r.not_measured == "unchanged since published" for r in kept)

    rebuilt = lakehouse.run([[order(21, amount=5.0)]], run_id="run-3").result("Audit")
    sums = [r for r in rebuilt.results if r.audit == "sum_matches_silver"]
    assert [r.detail for r in sums if r.table.endswith(".daily_sales")] == [
        f"sum of gross_revenue 105.00, {lakehouse.layout.silver_database}.orders 105.00"
    ]


def metadata_versions(spark: SparkSession, identifier: str) -> int:
    """How many metadata files the table's commits have written (each commit writes one)."""
    return spark.sql(f"SELECT * FROM {identifier}.metadata_log_entries").count()


def test_publishing_is_one_commit_and_never_moves_main_past_a_commit_the_branch_lacks(
    spark: SparkSession,
) -> None:
    database = f"wap_publish_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{database}")
    identifier = table_identifier(database, "numbers")
    spark.sql(f"CREATE TABLE {identifier} (n INT) USING iceberg TBLPROPERTIES ('write.wap.enabled' = 'true')")
    spark.sql(f"INSERT INTO {identifier} VALUES (1)")
    create_branch(spark, identifier, "run-1")
    with on_branch(spark, "run-1"):
        spark.sql(f"INSERT INTO {identifier} VALUES (2)")
    head, versions = branch_snapshots(spark, identifier)["run-1"], metadata_versions(spark, identifier)

    assert publish(spark, database, "numbers", "run-1")
    assert branch_snapshots(spark, identifier) == {MAIN: head}  # main moved, the branch is gone
    assert metadata_versions(spark, identifier) == versions + 1
    assert sorted(row.n for row in spark.table(identifier).collect()) == [1, 2]
    assert not publish(spark, database, "numbers", "run-1")  # nothing left to publish

    # main moved on without the branch: publishing refuses and leaves main and the branch as they were.
    create_branch(spark, identifier, "run-2")
    with on_branch(spark, "run-2"):
        spark.sql(f"INSERT INTO {identifier} VALUES (3)")
    spark.sql(f"INSERT INTO {identifier} VALUES (4)")
    heads = branch_snapshots(spark, identifier)
    with pytest.raises(Exception, match="ancestor"):
        publish(spark, database, "numbers", "run-2")
    assert branch_snapshots(spark, identifier) == heads
    assert sorted(row.n for row in spark.table(identifier).collect()) == [1, 2, 4]


def test_every_audit_of_a_branch_is_measured_in_one_spark_action_per_table_version(
    lakehouse: Lakehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakehouse.run([GOOD], run_id="run-1")
    with pytest.raises(AuditFailed) as failure:
        lakehouse.run([BAD], run_id="run-bad")  # every table written: every audit measured
    # (Freshness aside: the default thresholds switch it off.)
    assert [r.audit for r in failure.value.results if r.not_measured] == ["freshness", "freshness"]
    actions: list[str] = []
    # Per thread: the measures run side by side, and an action may call another inside it.
    within = threading.local()

    def counted(name: str) -> Any:
        action = getattr(DataFrame, name)

        def run_action(frame: DataFrame, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(within, "depth", 0)
            if depth == 0:
                actions.append(name)
            within.depth = depth + 1
            try:
                return action(frame, *args, **kwargs)
            finally:
                within.depth = depth

        return run_action

    for name in ("first", "head", "take", "collect", "count", "toLocalIterator"):
        monkeypatch.setattr(DataFrame, name, counted(name))
    silver, gold = lakehouse.layout.silver_database, lakehouse.layout.gold_database
    # (With the default thresholds an empty dataset also reads the ledger's last runs; not here.)
    measure(lakehouse.spark, silver, gold, "run-bad", AuditThresholds(empty_after_runs=0))
    # One per table version the audits aggregate: the ledger's new runs (its rows on the branch that `main`
    # lacks), silver.orders for the revenue sums, and each of the 3 Gold tables on the branch and on `main`
    # (rows lost). The quarantine rates come from snapshot summaries, not from an aggregation.
    assert actions == ["first"] * (1 + 1 + 3 + 3)

    monkeypatch.undo()
    again = measure(lakehouse.spark, silver, gold, "run-bad", AuditThresholds())
    assert again == list(failure.value.results)


def test_jobs_creating_the_run_branch_on_a_shared_table_at_once_all_succeed(spark: SparkSession) -> None:
    # Each dataset's Silver job creates the run's branch on the ledger, at the same time in AWS. Separate
    # sessions hold separate catalog caches, as separate jobs do, so their commits race.
    database = f"wap_race_{uuid.uuid4().hex[:8]}"
    ensure_tables(spark, database, registry.dataset("orders").tables)
    identifier = table_identifier(database, "orders")
    sessions = [spark.newSession() for _ in range(4)]
    for attempt in range(5):
        branch = f"run-{attempt}"
        start = Barrier(len(sessions))

        def create(session: SparkSession, branch: str = branch, start: Barrier = start) -> None:
            session.table(identifier).schema  # noqa: B018 (loads the table's metadata before the race)
            start.wait()
            create_branch(session, identifier, branch)

        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            for each in [pool.submit(create, session) for session in sessions]:
                each.result()  # a lost race would raise CommitFailedException here
        assert branch in branch_snapshots(spark, identifier)


def customer(number: int, country: str = "DE", updated_at: str = "2026-05-06T00:00:00Z") -> str:
    return json.dumps(
        {
            "customer_id": f"c{number}",
            "name": f"Customer {number}",
            "email": f"c{number}@example.com",
            "country": country,
            "segment": "consumer",
            "created_at": "2026-04-01T00:00:00Z",
            "updated_at": updated_at,
        }
    )


def test_the_gold_step_says_what_it_does_before_it_runs_whether_it_rebuilds_or_keeps_the_models(
    lakehouse: Lakehouse,
) -> None:
    headers: dict[str, list[str]] = {}
    runs: list[tuple[str, list[list[str]]]] = [("run-1", [GOOD]), ("run-2", [[]])]
    for run_id, pages in runs:
        lines = headers.setdefault(run_id, [])
        run = lakehouse.run(pages, run_id=run_id, progress=lines.append)
        gold = run.result("Gold")
        models = {model.table.name for model in registry.gold_models()}
        # The first run builds every model; the second, with nothing new in Silver, keeps every one.
        assert set(gold.up_to_date) == (set() if run_id == "run-1" else models)
    for lines in headers.values():
        (line,) = [line for line in lines if " Gold: " in line]
        assert line == (
            "[5/6] Gold: rebuild or update the Gold models whose Silver tables or definition changed, "
            "keep the others"
        )


def test_the_summary_counts_the_audits_of_tables_a_run_kept_as_not_measured(lakehouse: Lakehouse) -> None:
    people = [customer(n) for n in range(3)]
    lakehouse.run([GOOD], run_id="run-1", customers=[people])
    # Nothing new for orders; one customer moves to another country.
    moved = customer(1, country="FR", updated_at="2026-05-07T00:00:00Z")
    run = lakehouse.run([[]], run_id="run-2", customers=[[moved]])

    kept = run.result("Gold").up_to_date
    assert kept == ("daily_sales",)  # it reads only orders; the other models read customers too
    unchanged = sum(len(model.audits) for model in registry.gold_models() if model.table.name in kept)
    # Freshness, switched off by the default thresholds, is not measured either.
    switched_off = sum(isinstance(a, Freshness) for d in registry.datasets() for a in d.audits)
    declared = sum(len(d.audits) for d in registry.datasets()) + sum(
        len(m.audits) for m in registry.gold_models()
    )
    audit_line = next(line for line in run_summary(run).splitlines() if line.startswith("Audit "))
    measured = declared - unchanged - switched_off
    assert (
        f"{measured} of {measured} audits passed ({unchanged + switched_off} not measured: "
        f"{switched_off} switched off, {unchanged} unchanged since published); branch run-2 published on "
    ) in audit_line
    assert (unchanged, switched_off, measured) == (3, 2, 10)


def test_a_quarantine_threshold_with_decimals_is_compared_and_reported_with_them(
    lakehouse: Lakehouse,
) -> None:
    def thresholds(percent: str) -> AuditThresholds:
        return AuditThresholds.from_arguments(
            _parser().parse_args(["run", "--audit-max-quarantine-percent", percent])
        )

    one_in_eight = [*(order(i) for i in range(1, 8)), order(8, amount=-1.0)]  # 12.5% quarantined
    with pytest.raises(AuditFailed) as failure:
        lakehouse.run([one_in_eight], run_id="run-1", audits=thresholds("12.4"))
    assert (
        f"quarantine_rate on {lakehouse.layout.silver_database}.orders FAILED: "
        "12.50% (1 of 8 records this run newly quarantined), threshold <= 12.4%"
    ) in str(failure.value)

    # The threshold was too tight for this source: run again with it raised by a tenth.
    again = lakehouse.run([[]], run_id="run-2", audits=thresholds("12.5"))
    audit: AuditSummary = again.result("Audit")
    orders = f"{lakehouse.layout.silver_database}.orders"
    [rate] = [r for r in audit.results if (r.audit, r.table) == ("quarantine_rate", orders)]
    assert (rate.passed, rate.measured, rate.threshold) == (
        True,
        "12.50% (1 of 8 records this run newly quarantined)",
        "<= 12.5%",
    )
    assert sorted(row[0] for row in lakehouse.main_rows("silver.orders")) == list(range(1, 8))


def test_the_audit_job_drops_an_out_of_date_branch_everywhere_and_a_waiting_one_only_when_asked(
    lakehouse: Lakehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    databases = (lakehouse.spark, lakehouse.layout.silver_database, lakehouse.layout.gold_database)
    lakehouse.run([GOOD], run_id="run-1")
    for run_id in ("run-2", "run-3"):
        with pytest.raises(AuditFailed):
            lakehouse.run([BAD], run_id=run_id)
    # A good run after them publishes what they held back: their branches are out of date.
    lakehouse.run([[order(30)]], run_id="run-4", audits=AuditThresholds(max_quarantine_percent=100))
    with pytest.raises(AuditFailed):
        # Orders not seen before (the ones of BAD are in the published quarantine now): waiting, as main has
        # not moved on since.
        lakehouse.run([[order(i, amount=-1.0) for i in range(40, 45)]], run_id="run-5")
    every_table = [
        *(f"silver.{table.name}" for table in registry.silver_tables()),
        *(f"gold.{table.name}" for table in registry.gold_tables()),
    ]

    def holding(branch: str) -> list[str]:
        return [name for name in every_table if branch in lakehouse.heads(name)]

    def main_heads() -> dict[str, int | None]:
        return {name: lakehouse.heads(name).get(MAIN) for name in every_table}

    # The job as Glue starts it by hand: the job's default arguments, Glue's own, and the run's.
    job = [
        *("--silver-database", lakehouse.layout.silver_database),
        *("--gold-database", lakehouse.layout.gold_database),
        *("--publish-anyway", "false", "--JOB_NAME", "lakehouse-dev-audit"),
        *(part for item in AuditThresholds().arguments().items() for part in item),
    ]
    assert len(holding("run-2")) > 1 and moved_on(*databases, "run-2")
    expected = sorted(lakehouse.table(name) for name in holding("run-2"))
    published = main_heads()
    capsys.readouterr()  # what the runs printed

    audit_job.main([*job, "--drop-branch", "run-2"])
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"Dropped branch run-2 from {len(expected)} tables: ")
    assert sorted(line.split(": ", 1)[1].split(", ")) == expected
    assert holding("run-2") == []
    assert kept_branches(*databases) == ["run-3", "run-5"]
    assert main_heads() == published  # dropped, and nothing else: no table's main moved
    waiting = r"^branch run-5 is still waiting .* add \"--even-if-waiting\": \"true\" to the job run's"
    with pytest.raises(BranchWaiting, match=waiting):
        audit_job.main([*job, "--drop-branch", "run-5"])
    assert kept_branches(*databases) == ["run-3", "run-5"]
    audit_job.main([*job, "--drop-branch", "run-5", "--even-if-waiting", "true"])
    assert kept_branches(*databases) == ["run-3"]
    assert main_heads() == published
