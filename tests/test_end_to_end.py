"""The `lakehouse` command end to end, as a user runs it: twice on the sample API, once on another API.

The tables it produces are read with pyiceberg (an Iceberg implementation independent of Spark) and
compared exactly with tests/reference.py, computed from the records the source served.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.table import StaticTable

from local.class_archive import ENV_CLASS_ARCHIVES, running
from local.sample_api.customers import CustomerSource
from local.sample_api.generator import SampleSource, Slot
from tests.fixed_api import FixedPagesApi
from tests.reference import CUSTOMER_FIELDS, Expected, expected, unknown_fields

pytestmark = pytest.mark.spark


def lakehouse(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent), **environment}
    return subprocess.run(
        [sys.executable, "-m", "local", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def wait_for_exit(pid: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.2)


def read_table(data_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every row of a table, read with pyiceberg from the newest metadata of the Hadoop catalog."""
    metadata = data_dir / "warehouse" / name.replace(".", "/") / "metadata"
    version = (metadata / "version-hint.text").read_text().strip()
    table = StaticTable.from_metadata(str(metadata / f"v{version}.metadata.json"))
    rows: list[dict[str, Any]] = table.scan().to_arrow().to_pylist()
    return rows


def assert_tables_match(data_dir: Path, want: Expected) -> None:
    silver = {
        row["order_id"]: (
            row["customer_id"],
            row["status"],
            row["amount"],
            row["currency"],
            row["created_at"],
            row["updated_at"],
        )
        for row in read_table(data_dir, "silver.orders")
    }
    assert silver == want.silver
    quarantine = Counter(
        (row["raw_record"], row["reason"]) for row in read_table(data_dir, "silver.orders_quarantine")
    )
    assert quarantine == want.quarantine
    daily = {tuple(row.values()) for row in read_table(data_dir, "gold.daily_sales")}
    assert daily == want.daily_sales
    customers = {tuple(row.values()) for row in read_table(data_dir, "gold.customer_summary")}
    assert customers == want.customer_summary
    by_country = {tuple(row.values()) for row in read_table(data_dir, "gold.sales_by_country")}
    assert by_country == want.sales_by_country
    silver_customers = {
        row["customer_id"]: tuple(
            row[name] for name in ("name", "email", "country", "segment", "created_at", "updated_at")
        )
        for row in read_table(data_dir, "silver.customers")
    }
    assert silver_customers == want.customers
    customer_quarantine = Counter(
        (row["raw_record"], row["reason"]) for row in read_table(data_dir, "silver.customers_quarantine")
    )
    assert customer_quarantine == want.customer_quarantine


def test_two_runs_on_the_sample_api_match_an_independent_computation(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # The first run saves the classes its JVM loaded; the second starts from them (-Xshare:on: Java stops
    # rather than go on without them).
    archives = {ENV_CLASS_ARCHIVES: str(tmp_path / "class-archives")}
    # Seed 11 at this size serves every kind of record the sample knows (see the check below).
    first = lakehouse(
        "run", "--data-dir", str(data_dir), "--sample-orders", "600", "--seed", "11", **archives
    )
    assert first.returncode == 0, first.stderr
    assert "rows in gold.daily_sales" in first.stdout
    assert first.stdout.splitlines()[-1] == (
        "Java saves the classes this run loaded as it exits, in the background (once, about 15 s): later "
        "runs and queries start quicker"
    )
    (saved,) = (tmp_path / "class-archives").glob("*/saved")  # the pid of the JVM writing them, first
    wait_for_exit(int(saved.read_text().splitlines()[0]))

    # Gold incrementally: the independent computation below is its oracle too.
    second = lakehouse(
        "run",
        "--data-dir",
        str(data_dir),
        "--gold-refresh",
        "incremental",
        **archives,
        LAKEHOUSE_SPARK_JAVA_OPTIONS="-Xshare:on",
    )
    assert second.returncode == 0, second.stderr
    assert "recomputed the rows Silver changed in gold.customer_summary" in second.stdout
    assert second.stdout.splitlines()[-1].startswith("Query it with: ")  # nothing more to save
    assert sorted(path.name for path in saved.parent.iterdir()) == ["base.jsa", "classes.jsa"]

    source = SampleSource(seed=11, initial_orders=600, batches=2)
    served = {source.slot_kind(batch, slot) for batch, slot, _ in source.records()}
    assert served == set(Slot)
    batch_1 = [text for batch, _, text in source.records() if batch == 1]
    batch_2 = [text for _, _, text in source.records(first_batch=2)]
    people = CustomerSource(source)
    people_1 = [people.record_text(1, slot) for slot in range(people.batch_size(1))]
    people_2 = [people.record_text(2, slot) for slot in range(people.batch_size(2))]
    # The second run asks from the watermark on, inclusive: the last record of batch 1 comes again.
    want = expected([batch_1, [batch_1[-1], *batch_2]], customer_runs=[people_1, [people_1[-1], *people_2]])
    assert_tables_match(data_dir, want)

    # The second run was incremental: it ingested only batch 2 (and the record at the watermark).
    every_run = read_table(data_dir, "silver.ingestion_runs")
    runs = [run for run in every_run if run["dataset"] == "orders"]
    assert sorted(run["records"] for run in runs) == sorted([len(batch_1), len(batch_2) + 1])
    for run in every_run:  # every record accounted for
        assert run["records"] == run["accepted"] + run["quarantined"]
    assert sum(run["quarantined"] for run in every_run) == want.rejections
    # Fields no column declares, counted per run over every record received (the sample orders send
    # `channel`, the sample customers `phone`).
    by_run = {(run["dataset"], run["records"]): dict(run["unknown_fields"]) for run in every_run}
    assert by_run == {
        ("orders", len(batch_1)): unknown_fields(batch_1),
        ("orders", len(batch_2) + 1): unknown_fields([batch_1[-1], *batch_2]),
        ("customers", len(people_1)): unknown_fields(people_1, CUSTOMER_FIELDS),
        ("customers", len(people_2) + 1): unknown_fields([people_1[-1], *people_2], CUSTOMER_FIELDS),
    }
    assert re.search(rf"\n  unknown field channel +0 +{unknown_fields(batch_1)['channel']:,}\n", first.stdout)
    assert re.search(rf"\nrecords ingested +{len(people_2) + 1:,} +{len(batch_2) + 1:,}\n", second.stdout)


def test_a_run_against_another_api_and_a_query_as_json(tmp_path: Path) -> None:
    records = [
        '{"order_id": 1, "customer_id": "alice", "status": "paid", "amount": 10, "currency": "eur", '
        '"created_at": "2026-05-01T23:30:00-02:00", "updated_at": "2026-05-02T00:00:00Z", "note": "x"}',
        '{"order_id": "1", "customer_id": "alice", "status": "REFUNDED", "amount": "10.005", '
        '"currency": "EUR", "created_at": "2026-05-01T23:30:00-02:00", '
        '"updated_at": "2026-05-03T00:00:00.5Z"}',
        '{"order_id": 2, "customer_id": "bob", "status": "shipped", "amount": 0.1, "currency": "usd", '
        '"created_at": "2026-05-02T00:00:00Z", "updated_at": "2026-05-02T00:00:00Z", '
        '"items": [{"sku": "A"}]}',
        '{"order_id": 2, "customer_id": "bob", "status": "cancelled", "amount": 0.1, "currency": "usd", '
        '"created_at": "2026-05-02T00:00:00Z", "updated_at": "2026-05-01T00:00:00Z"}',
        '{"order_id": 3, "customer_id": "", "status": "paid", "amount": 1, "currency": "EUR", '
        '"created_at": "2026-05-02T00:00:00Z", "updated_at": "2026-05-02T00:00:00Z"}',
        "[1, 2, 3]",
        "null",
    ]
    data_dir = tmp_path / "data"
    with FixedPagesApi([records[:3], records[3:], []]) as api:
        # The base URL from the environment, as the Lambda function gets it. Three of seven records are
        # invalid, which the quarantine-rate audit would stop: published anyway.
        options = ("--page-size", "3", "--publish-anyway")
        result = lakehouse("run", "--data-dir", str(data_dir), *options, SOURCE_BASE_URL=api.url)
    assert result.returncode == 0, result.stderr
    assert_tables_match(data_dir, expected([records]))
    assert [query["limit"] for query in api.queries] == [["3"], ["3"], ["3"]]

    query = lakehouse(
        "query",
        "SELECT order_date, currency, gross_revenue, refunded_amount FROM gold.daily_sales ORDER BY 1, 2",
        "--data-dir",
        str(data_dir),
        "--format",
        "json",
    )
    assert query.returncode == 0, query.stderr
    assert [json.loads(line) for line in query.stdout.splitlines()] == [
        {"order_date": "2026-05-02", "currency": "EUR", "gross_revenue": 0, "refunded_amount": 10.01},
        {"order_date": "2026-05-02", "currency": "USD", "gross_revenue": 0.1, "refunded_amount": 0},
    ]
    assert '"refunded_amount":10.01' in query.stdout  # exact decimal digits, not a float repr


def test_an_unreachable_source_fails_with_one_clear_message(tmp_path: Path) -> None:
    result = lakehouse(
        "run",
        "--source-url",
        "http://127.0.0.1:9",
        "--data-dir",
        str(tmp_path),
        "--audit-max-row-drop-percent",
        "20",
        SOURCE_MAX_ATTEMPTS="2",
        SOURCE_BACKOFF_BASE_SECONDS="0.1",
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    # The first declared dataset (customers) is the first to fail.
    assert (
        "the source API at http://127.0.0.1:9/v1/customers failed 2 times on page 1; last error: "
        "ConnectionError: [Errno 111] Connection refused. Check that the API is up" in lines[0]
    )
    assert "WARNING: Source request for page 1 failed (ConnectionError: [Errno 111]" in result.stderr
    assert "Max retries" not in result.stderr  # urllib3's own wording: this client retries by itself
    assert "Traceback" not in result.stderr
    (stopped,) = [line for line in result.stdout.splitlines() if line.startswith("Run ")]
    assert stopped.endswith(
        f"stopped before writing to any table: fix the cause, then `lakehouse run --data-dir {tmp_path} "
        "--source-url http://127.0.0.1:9 --audit-max-row-drop-percent 20`."  # the run's own options
    )


def test_sample_options_with_another_source_are_refused(tmp_path: Path) -> None:
    result = lakehouse(
        "run", "--source-url", "http://127.0.0.1:9", "--sample-orders", "10", "--data-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert "only apply to the bundled sample API" in result.stderr


def test_query_before_any_run_says_what_to_do(tmp_path: Path) -> None:
    result = lakehouse("query", "SELECT 1", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "run `lakehouse run` first" in result.stderr
