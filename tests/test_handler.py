"""The Lambda handler under moto: S3 for Bronze, Secrets Manager for the token."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Final

import boto3
import pytest
from moto import mock_aws

from etl.bronze.handler import InvalidEvent, handler, parse_event
from etl.bronze.layout import BronzeLayout, read_manifest
from etl.bronze.secrets import TokenError
from etl.bronze.settings import SettingsError
from etl.pipeline import INGESTION_RESULT_FIELDS
from etl.storage import open_store
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer
from tests.conftest import FakeLambdaContext, load_event

TOKEN = "tok-9f8e7d6c5b4a"
REGION: Final = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(
            Bucket="lakehouse-bronze", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield


@pytest.fixture
def source() -> SampleSource:
    return SampleSource(seed=2, initial_orders=150, batches=1)


def configure(monkeypatch: pytest.MonkeyPatch, url: str, secret_arn: str) -> None:
    monkeypatch.setenv("LAKEHOUSE_BRONZE_ROOT", "s3://lakehouse-bronze")
    monkeypatch.setenv("SOURCE_BASE_URL", url)
    monkeypatch.setenv("SOURCE_PAGE_SIZE", "50")
    monkeypatch.setenv("SOURCE_API_TOKEN_SECRET_ARN", secret_arn)
    monkeypatch.delenv("SOURCE_API_TOKEN", raising=False)


@pytest.mark.parametrize("secret_value", [TOKEN, json.dumps({"token": TOKEN})])
def test_ingests_with_the_token_from_secrets_manager(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: SampleSource,
    lambda_context: FakeLambdaContext,
    secret_value: str,
) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="source-token", SecretString=secret_value)["ARN"]
    event = load_event("ingest_event.json")
    with SampleApiServer(source, token=TOKEN) as api:
        configure(monkeypatch, api.url, arn)
        result = handler(event, lambda_context)

    assert set(result) >= set(INGESTION_RESULT_FIELDS)
    run_id = f"{event['run_id']}-002"  # the execution's second ingestion
    assert result["run_id"] == run_id
    assert result["records"] == source.batch_size(1)
    assert result["has_more"] is False
    assert result["manifest"] == f"s3://lakehouse-bronze/_manifests/orders/{run_id}.json"

    store = open_store("s3://lakehouse-bronze")
    manifest = read_manifest(store, BronzeLayout("orders"), run_id)
    assert manifest is not None
    assert manifest.started_at == "2026-11-26T13:51:26.123000Z"
    assert all("ingestion_date=2026-11-26" in obj.key for obj in manifest.objects)
    body = store.get(manifest.objects[0].key)
    assert body is not None
    first_line = gzip.decompress(body).decode().split("\n")[0]
    assert first_line == source.record_text(1, 0)

    messages = [record.getMessage() for record in caplog.records]
    assert "Ingestion finished" in messages  # structured logs were written ...
    logged = json.dumps([vars(record) for record in caplog.records], default=str)
    assert event["run_id"] in logged
    assert TOKEN not in logged  # ... and no field of any of them carries the token


def test_a_missing_secret_fails_with_a_message_naming_it(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf"
    configure(monkeypatch, "http://127.0.0.1:9", arn)
    with pytest.raises(TokenError, match="nope-AbCdEf"):
        handler({"dataset": "orders"}, lambda_context)


def test_a_json_secret_without_a_token_field_is_rejected(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="t", SecretString='{"key": "x"}')["ARN"]
    configure(monkeypatch, "http://127.0.0.1:9", arn)
    with pytest.raises(TokenError, match='without a "token"'):
        handler({"dataset": "orders"}, lambda_context)


def test_an_event_without_a_dataset_is_refused_before_any_request_when_the_environment_names_none(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    configure(monkeypatch, "http://127.0.0.1:9", "")  # as the stack sets it: no LAKEHOUSE_DATASET
    monkeypatch.delenv("LAKEHOUSE_DATASET", raising=False)
    with pytest.raises(SettingsError, match='the event\'s "dataset" field or set LAKEHOUSE_DATASET'):
        handler({"run_id": "r1"}, lambda_context)
    assert boto3.client("s3").list_objects_v2(Bucket="lakehouse-bronze")["KeyCount"] == 0


def test_a_bad_start_time_is_rejected_before_any_request(
    aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    configure(monkeypatch, "http://127.0.0.1:9", "")
    with pytest.raises(InvalidEvent, match="started_at"):
        handler({"run_id": "r1", "started_at": "noon", "dataset": "orders"}, lambda_context)


def test_stops_before_the_invocation_times_out_and_says_there_is_more(
    aws: None, monkeypatch: pytest.MonkeyPatch, source: SampleSource
) -> None:
    configure(monkeypatch, "http://127.0.0.1:9", "")
    monkeypatch.setenv("SOURCE_API_TOKEN", "t")
    # 100 s left at the first check, then 40 s: less than one request timeout (30 s) and the commit.
    context = FakeLambdaContext(remaining_millis=[100_000, 40_000])
    with SampleApiServer(source) as api:
        monkeypatch.setenv("SOURCE_BASE_URL", api.url)
        result = handler({"run_id": "exec-1", "iteration": 1, "dataset": "orders"}, context)
        # Page 3 may have been asked for while page 2 was written: the run stopped without taking it.
        assert len(api.requests) in (2, 3)

    assert (result["run_id"], result["pages"], result["records"]) == ("exec-1-001", 2, 100)
    assert result["has_more"] is True
    manifest = read_manifest(open_store("s3://lakehouse-bronze"), BronzeLayout("orders"), "exec-1-001")
    assert manifest is not None and manifest.has_more is True


@pytest.mark.parametrize("iteration", [0, 1000, -1, "1a", True, 1.5])
def test_an_iteration_out_of_range_is_rejected(iteration: object) -> None:
    with pytest.raises(InvalidEvent, match="iteration"):
        parse_event({"run_id": "r", "iteration": iteration})


def test_the_iteration_becomes_a_zero_padded_suffix_of_the_run_id() -> None:
    assert parse_event({"run_id": "exec", "iteration": 7})[0] == "exec-007"
    assert parse_event({"run_id": "exec", "iteration": "12"})[0] == "exec-012"
    assert parse_event({"run_id": "exec"})[0] == "exec"
    assert parse_event({"run_id": "x" * 80, "iteration": 999})[0] == "x" * 80 + "-999"
