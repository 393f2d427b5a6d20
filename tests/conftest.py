"""Shared fixtures: one SparkSession for the whole run, the sample API, a fake Lambda context."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from local.class_archive import ENV_CLASS_ARCHIVES, OFF
from local.sample_api.generator import SampleSource
from local.sample_api.server import SampleApiServer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EVENTS = Path(__file__).parent / "events"

# Every JVM of the tests starts without a class archive (local/class_archive.py), so that no test depends
# on which ran first, and the tests leave the virtual environment's archive alone; the tests of the
# archive set their own directory.
os.environ[ENV_CLASS_ARCHIVES] = OFF


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The one SparkSession of the test run, with a local Iceberg catalog in a temporary warehouse."""
    from local.session import build_session

    session = build_session(warehouse=str(tmp_path_factory.mktemp("warehouse")), app_name="lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture
def small_source() -> SampleSource:
    return SampleSource(seed=11, initial_orders=300, change_fraction=0.2, batches=1)


@pytest.fixture
def sample_api(small_source: SampleSource) -> Iterator[SampleApiServer]:
    with SampleApiServer(small_source) as server:
        yield server


class FakeLambdaContext(LambdaContext):
    def __init__(self, remaining_millis: list[int] | None = None) -> None:
        # What get_remaining_time_in_millis answers, one value per call (the last one repeats).
        self.remaining_millis = remaining_millis or [300_000]
        self._function_name = "lakehouse-ingest"
        self._function_version = "$LATEST"
        self._memory_limit_in_mb = 512
        self._invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:lakehouse-ingest"
        self._aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        if len(self.remaining_millis) > 1:
            return self.remaining_millis.pop(0)
        return self.remaining_millis[0]


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
