"""The per-run metrics: EMF lines that parse, with the namespace, dimensions and values of the real runs.

The function's handler runs against the sample API under moto, and the Silver and Gold jobs' `main` on
real Iceberg tables, as Lambda and Glue would run them; only their standard output is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import SparkSession

from etl import metrics, registry
from etl.bronze.handler import handler
from etl.gold import job as gold
from etl.pipeline import PIPELINE
from etl.silver import job as silver
from etl.spark.jobs import ensure_tables
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer
from tests.conftest import FakeLambdaContext, load_event
from tests.test_handler import TOKEN, aws, configure  # noqa: F401 (aws is a fixture)
from tests.test_silver_job import Lake, order

NAMESPACE = "Lakehouse/test"


def emf_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines a run printed (log lines are JSON too)."""
    documents = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


def published(document: dict[str, Any]) -> dict[str, float]:
    """What CloudWatch would extract from one EMF document: each declared metric's value."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    values = {}
    for metric in directive["Metrics"]:
        value = document[metric["Name"]]
        values[metric["Name"]] = value[0] if isinstance(value, list) else value  # Powertools: [value]
    return values


def assert_dimensions(document: dict[str, Any], step: str, dataset: str | None) -> None:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert isinstance(document["_aws"]["Timestamp"], int)
    if dataset is None:
        assert directive["Dimensions"] == [[metrics.STEP]]
        assert metrics.DATASET not in document
    else:
        assert directive["Dimensions"] == [[metrics.STEP], [metrics.DATASET, metrics.STEP]]
        assert document[metrics.DATASET] == dataset
    assert document[metrics.STEP] == step
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units[metrics.DURATION] == "Seconds"
    assert units[metrics.FAILURES] == "Count"


def test_a_run_without_a_namespace_publishes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with metrics.published_run(None, "Silver", "orders") as run:
        run.counts[metrics.RECORDS_READ] = 3
    assert capsys.readouterr().out == ""


def test_a_failed_run_publishes_one_failure_and_raises(capsys: pytest.CaptureFixture[str]) -> None:
    ticks = iter([10.0, 12.5])
    with (
        pytest.raises(ZeroDivisionError),
        metrics.published_run(NAMESPACE, "Gold", clock=lambda: next(ticks)),
    ):
        _ = 1 / 0
    (document,) = emf_lines(capsys.readouterr().out)
    assert_dimensions(document, "Gold", None)
    assert published(document) == {metrics.DURATION: 2.5, metrics.FAILURES: 1}


def test_the_function_publishes_records_pages_and_duration_with_powertools(
    aws: None,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lambda_context: FakeLambdaContext,
) -> None:
    source = SampleSource(seed=2, initial_orders=150, batches=1)
    arn = boto3.client("secretsmanager").create_secret(Name="source-token", SecretString=TOKEN)["ARN"]
    monkeypatch.setenv(metrics.ENV_METRICS_NAMESPACE, NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "lakehouse")  # must not become a dimension
    event = {**load_event("ingest_event.json"), "dataset": "orders"}
    with SampleApiServer(source, token=TOKEN) as api:
        configure(monkeypatch, api.url, arn)
        result = handler(event, lambda_context)

    (document,) = emf_lines(capsys.readouterr().out)
    assert_dimensions(document, PIPELINE.steps[0].name, "orders")
    values = published(document)
    assert values[metrics.RECORDS_INGESTED] == result["records"] == source.batch_size(1)
    assert values[metrics.PAGES] == result["pages"] > 1  # 50 records a page
    assert values[metrics.FAILURES] == 0
    assert 0 < values[metrics.DURATION] < 60


def test_a_failed_invocation_publishes_a_failure(
    aws: None,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv(metrics.ENV_METRICS_NAMESPACE, NAMESPACE)
    configure(monkeypatch, "http://127.0.0.1:9", "")
    with pytest.raises(ValueError, match="started_at"):
        handler({"run_id": "r1", "started_at": "noon", "dataset": "customers"}, lambda_context)
    (document,) = emf_lines(capsys.readouterr().out)
    assert_dimensions(document, "Bronze", "customers")
    assert published(document)[metrics.FAILURES] == 1


@pytest.mark.spark
def test_the_silver_and_gold_jobs_publish_their_counts_from_main(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = Lake(spark, tmp_path)
    bad = order(3, "2026-01-01T01:00:00Z", status="lost")
    lake.land("r1", [order(1, "2026-01-01T01:00:00Z"), '"oops"'], [order(2, "2026-01-01T02:00:00Z"), bad])
    capsys.readouterr()
    argv = ["--bronze-root", lake.bronze, "--silver-database", lake.database]
    silver.main([*argv, "--dataset", "orders", metrics.METRICS_NAMESPACE, NAMESPACE])

    (document,) = emf_lines(capsys.readouterr().out)
    assert_dimensions(document, "Silver", "orders")
    values = published(document)
    merged = spark.table(f"{lake.database}.orders").count()
    quarantined = spark.table(f"{lake.database}.orders_quarantine").count()
    assert (merged, quarantined) == (2, 2)
    assert {name: values[name] for name in PIPELINE.step("Silver").metrics} == {
        metrics.RECORDS_READ: 4,
        metrics.RECORDS_ACCEPTED: 2,
        metrics.RECORDS_QUARANTINED: quarantined,
        metrics.RECORDS_MERGED: merged,
    }
    assert values[metrics.FAILURES] == 0

    # Gold over that Silver, the other datasets' tables empty.
    ensure_tables(spark, lake.database, registry.silver_tables())
    gold_database = f"{lake.database}_gold"
    gold.main(
        [
            "--silver-database",
            lake.database,
            "--gold-database",
            gold_database,
            "--metrics-namespace",
            NAMESPACE,
        ]
    )
    (document,) = emf_lines(capsys.readouterr().out)
    assert_dimensions(document, "Gold", None)
    values = published(document)
    tables = registry.gold_tables()
    assert tables
    for table in tables:
        assert values[metrics.table_rows(table.name)] == spark.table(f"{gold_database}.{table.name}").count()
    assert values[metrics.FAILURES] == 0

    # A Gold run that fails (its Silver database does not exist) still says so.
    with pytest.raises(gold.SilverMissing):
        gold.main(
            [
                "--silver-database",
                "nowhere",
                "--gold-database",
                gold_database,
                "--metrics-namespace",
                NAMESPACE,
            ]
        )
    (document,) = emf_lines(capsys.readouterr().out)
    assert published(document)[metrics.FAILURES] == 1


def test_a_run_that_only_re_delivers_rejected_records_publishes_none_quarantined() -> None:
    # The quarantine holds them from the run that first delivered them; the quarantine-rate alarm must
    # not fire on every run of a source whose record at the watermark is a rejected one.
    redelivered = silver.SilverSummary(runs=("r2",), records=1, accepted=0, quarantined=1, redelivered=True)
    merged = silver.SilverSummary(runs=("r1",), records=1, accepted=0, quarantined=1)

    assert silver.run_metrics(redelivered)[metrics.RECORDS_QUARANTINED] == 0
    assert silver.run_metrics(merged)[metrics.RECORDS_QUARANTINED] == 1
    assert silver.run_metrics(redelivered)[metrics.RECORDS_READ] == 1
