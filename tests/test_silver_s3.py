"""The Silver job over Bronze in S3, as in AWS: the executors' Python reads the objects with boto3.

S3 is moto's server on 127.0.0.1; the driver (manifests) and the Python workers (objects) reach it
through the AWS SDK's endpoint setting, as they would reach S3 under a Glue job's role. Spark itself
never reads Bronze, so no Hadoop S3 file system is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pyspark.sql import SparkSession

from etl.bronze.ingest import ingest
from etl.bronze.layout import BronzeLayout, read_manifest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.silver import job as silver
from etl.storage import open_store
from tests.fixed_api import FixedPagesApi
from tests.test_silver_job import Lake, order

pytestmark = pytest.mark.spark

BUCKET = "lakehouse-bronze-test"
BRONZE = f"s3://{BUCKET}/bronze"


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> Lake:
    return Lake(spark, tmp_path)


@pytest.fixture
def s3(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An S3 endpoint on 127.0.0.1 for this process and for Spark's Python workers, with the bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = {
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # The Python workers' environment: the functions Spark ships from now on carry it.
    workers = spark.sparkContext.environment
    before = dict(workers)
    workers.update(settings)
    try:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield
    finally:
        workers.clear()
        workers.update(before)
        server.stop()


def _land(run_id: str, *pages: list[str]) -> None:
    with FixedPagesApi(list(pages)) as api:
        ingest(
            IngestionSettings(SourceSettings(api.url), BRONZE, "orders"),
            run_id,
            datetime(2026, 2, 1, tzinfo=UTC),
        )


def _merge(lake: Lake) -> silver.SilverSummary:
    argv = ["--bronze-root", BRONZE, "--silver-database", lake.database, "--dataset", "orders"]
    return silver.run(lake.spark, silver.parse_args(argv))


def test_runs_in_s3_are_read_by_the_executors_and_merged(lake: Lake, s3: None) -> None:
    _land("r1", [order(1, "2026-01-01T05:00:00Z"), '{"not": "an order"}'], [order(2, "2026-01-01T06:00:00Z")])

    summary = _merge(lake)

    assert (summary.records, summary.accepted, summary.quarantined) == (3, 2, 1)
    assert lake.orders() == [
        (1, "placed", Decimal("10.00"), "2026-01-01T05:00:00", "r1"),
        (2, "placed", Decimal("10.00"), "2026-01-01T06:00:00", "r1"),
    ]
    manifest = read_manifest(open_store(BRONZE), BronzeLayout("orders"), "r1")
    assert manifest is not None
    first, second = (obj.key for obj in manifest.objects)
    stored = {r.order_id: r.source_object for r in lake.spark.table(f"{lake.database}.orders").collect()}
    assert stored == {1: first, 2: second}
    rejected = lake.spark.table(f"{lake.database}.orders_quarantine").collect()
    assert [(r.raw_record, r.source_object, r.line_number) for r in rejected] == [
        ('{"not": "an order"}', first, 2)
    ]


def test_an_object_missing_from_s3_is_named_with_its_uri_and_nothing_is_merged(lake: Lake, s3: None) -> None:
    _land("r1", [order(1, "2026-01-01T05:00:00Z")], [order(2, "2026-01-01T06:00:00Z")])
    manifest = read_manifest(open_store(BRONZE), BronzeLayout("orders"), "r1")
    assert manifest is not None
    gone = manifest.objects[1].key
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=f"bronze/{gone}")

    with pytest.raises(silver.DamagedBronzeObject) as refused:
        _merge(lake)

    assert str(refused.value).startswith(f"Bronze object {BRONZE}/{gone} of run r1 is damaged: it is missing")
    assert not lake.spark.catalog.tableExists(f"{lake.database}.ingestion_runs") or not (
        lake.spark.table(f"{lake.database}.ingestion_runs").count()
    )
