"""The source client against the real sample API over HTTP, with injected faults."""

from __future__ import annotations

import pytest

from etl.bronze.settings import SourceSettings
from etl.bronze.source import SourceClient, SourceError
from local.sample_api.generator import SampleSource
from local.sample_api.server import Fault, FaultPlan, SampleApiServer

SINCE = "1970-01-01T00:00:00Z"


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(
    server: SampleApiServer, sleep: RecordedSleep, token: str | None = None, **settings: object
) -> SourceClient:
    options: dict[str, object] = {"page_size": 100, "backoff_base_seconds": 0.5, "max_attempts": 4}
    options.update(settings)
    return SourceClient(
        SourceSettings(base_url=server.url, **options),  # type: ignore[arg-type]
        token=token,
        sleep=sleep,
        jitter=lambda: 1.0,
    )


def all_texts(source: SampleSource) -> list[str]:
    return [text for _, _, text in source.records()]


def test_follows_the_cursor_until_null_and_gets_every_record(small_source: SampleSource) -> None:
    with SampleApiServer(small_source) as server:
        pages = list(client_for(server, RecordedSleep()).pages(SINCE))
    assert [page.number for page in pages] == [1, 2, 3]
    assert [text for page in pages for text, _ in page.records] == all_texts(small_source)
    assert all("limit=100" in request for request in server.requests)


def test_only_asks_for_changes_since_the_watermark() -> None:
    source = SampleSource(seed=3, initial_orders=200, change_fraction=0.25, batches=2)
    with SampleApiServer(source) as server:
        pages = list(client_for(server, RecordedSleep()).pages("2025-01-01T00:00:00Z"))
    texts = [text for page in pages for text, _ in page.records]
    assert texts == [text for _, _, text in source.records(first_batch=2)]
    assert "updated_since=2025-01-01T00%3A00%3A00Z" in server.requests[0]


@pytest.mark.parametrize(
    "fault", [Fault.SERVER_ERROR, Fault.UNAVAILABLE, Fault.TRUNCATED, Fault.NOT_JSON, Fault.SLOW]
)
def test_retries_transient_faults_with_exponential_backoff(small_source: SampleSource, fault: Fault) -> None:
    sleep = RecordedSleep()
    plan = FaultPlan.of([fault, fault], slow_seconds=1.0)
    with SampleApiServer(small_source, faults=plan) as server:
        pages = list(client_for(server, sleep, timeout_seconds=0.3).pages(SINCE))
    assert [text for page in pages for text, _ in page.records] == all_texts(small_source)
    assert pages[0].attempts == 3
    assert sleep.delays == [0.5, 1.0]  # base * 2**(attempt-1), full jitter pinned to its ceiling


def test_waits_at_least_retry_after_on_429(small_source: SampleSource) -> None:
    sleep = RecordedSleep()
    plan = FaultPlan.of([Fault.RATE_LIMITED], retry_after="7")
    with SampleApiServer(small_source, faults=plan) as server:
        pages = list(client_for(server, sleep).pages(SINCE))
    assert sleep.delays == [7.0]
    assert sum(len(page.records) for page in pages) == small_source.batch_size(1)


@pytest.mark.parametrize("header", ["soon", "inf", "1e9", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_a_retry_after_that_is_not_seconds_falls_back_to_backoff(
    small_source: SampleSource, header: str
) -> None:
    sleep = RecordedSleep()
    with SampleApiServer(
        small_source, faults=FaultPlan.of([Fault.RATE_LIMITED], retry_after=header)
    ) as server:
        list(client_for(server, sleep).pages(SINCE))
    assert sleep.delays == [0.5]


def test_a_retry_after_beyond_the_longest_backoff_ends_the_run_at_once(small_source: SampleSource) -> None:
    sleep = RecordedSleep()
    plan = FaultPlan.of([Fault.RATE_LIMITED], retry_after="3600")
    with SampleApiServer(small_source, faults=plan) as server, pytest.raises(SourceError) as error:
        list(client_for(server, sleep, backoff_max_seconds=60).pages(SINCE))
    assert "asks to wait 3600 s" in str(error.value)
    assert sleep.delays == []


def test_json_that_is_not_a_page_fails_at_once(small_source: SampleSource) -> None:
    with SampleApiServer(small_source, faults=FaultPlan.of([Fault.NOT_A_PAGE])) as server:
        with pytest.raises(
            SourceError, match="does not follow the page contract: the page has no 'data' array"
        ):
            list(client_for(server, RecordedSleep()).pages(SINCE))
    assert len(server.requests) == 1


def test_a_byte_order_mark_is_tolerated(small_source: SampleSource) -> None:
    with SampleApiServer(small_source, faults=FaultPlan.of([Fault.BYTE_ORDER_MARK])) as server:
        pages = list(client_for(server, RecordedSleep()).pages(SINCE))
    assert [text for page in pages for text, _ in page.records] == all_texts(small_source)


def test_jitter_spreads_the_backoff_below_its_ceiling(small_source: SampleSource) -> None:
    sleep = RecordedSleep()
    plan = FaultPlan.of([Fault.SERVER_ERROR] * 3)
    with SampleApiServer(small_source, faults=plan) as server:
        client = SourceClient(
            SourceSettings(base_url=server.url, backoff_base_seconds=2, backoff_max_seconds=3),
            sleep=sleep,
            jitter=lambda: 0.25,
        )
        list(client.pages(SINCE))
    assert sleep.delays == [0.5, 0.75, 0.75]  # ceilings 2, 4 -> capped at 3, 3; times 0.25


def test_one_attempt_that_fails_is_said_once(small_source: SampleSource) -> None:
    plan = FaultPlan.of([Fault.SERVER_ERROR])
    with SampleApiServer(small_source, faults=plan) as server, pytest.raises(SourceError) as error:
        list(client_for(server, RecordedSleep(), max_attempts=1).pages(SINCE))
    assert "failed once on page 1;" in str(error.value)


def test_gives_up_after_max_attempts_with_a_clear_error(small_source: SampleSource) -> None:
    sleep = RecordedSleep()
    plan = FaultPlan.of([Fault.SERVER_ERROR] * 10)
    with SampleApiServer(small_source, faults=plan) as server, pytest.raises(SourceError) as error:
        list(client_for(server, sleep, max_attempts=3).pages(SINCE))
    assert "failed 3 times on page 1" in str(error.value)
    assert "500" in str(error.value)
    assert len(server.requests) == 3
    assert len(sleep.delays) == 2


def test_fails_at_once_on_refused_credentials_without_retrying(small_source: SampleSource) -> None:
    sleep = RecordedSleep()
    with SampleApiServer(small_source, token="right") as server, pytest.raises(SourceError) as error:
        list(client_for(server, sleep, token="wrong").pages(SINCE))
    assert "refused the credentials (401" in str(error.value)
    assert "wrong" not in str(error.value)
    assert len(server.requests) == 1
    assert sleep.delays == []


def test_sends_the_bearer_token(small_source: SampleSource) -> None:
    with SampleApiServer(small_source, token="s3cr3t") as server:
        pages = list(client_for(server, RecordedSleep(), token="s3cr3t").pages(SINCE))
    assert sum(len(page.records) for page in pages) == small_source.batch_size(1)


def test_a_client_error_is_not_retried(small_source: SampleSource) -> None:
    with SampleApiServer(small_source) as server, pytest.raises(SourceError) as error:
        list(client_for(server, RecordedSleep(), path="/v2/nothing").pages(SINCE))
    assert "404" in str(error.value)
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    sleep = RecordedSleep()
    with SampleApiServer(SampleSource(initial_orders=1)) as server:
        url = server.url  # a port that was bound, then released: nothing listens there now
    client = SourceClient(SourceSettings(base_url=url, max_attempts=2), sleep=sleep, jitter=lambda: 0.0)
    with pytest.raises(SourceError) as error:
        list(client.pages(SINCE))
    assert "ConnectionError" in str(error.value)
    assert len(sleep.delays) == 1
