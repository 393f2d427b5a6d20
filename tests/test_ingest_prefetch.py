"""Ingestion fetches the next page while it writes the current one, one page ahead and no more.

A source API on 127.0.0.1 and a store share one timeline: the API notes when each request starts, the
store notes each page it has written, and can hold a page's write until the API has seen a request.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from etl.bronze.deadline import Deadline
from etl.bronze.ingest import ingest
from etl.bronze.layout import BronzeLayout, read_manifest, read_watermark
from etl.bronze.page_parser import ParsedPage
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.bronze.source import SourceClient, SourceError
from etl.storage import LocalStore
from etl.timestamps import parse_rfc3339
from tests.local_server import EMPTY_PAGE, ORDERS_PATH, LocalServer, send_json

STARTED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LAYOUT = BronzeLayout("orders")
WAIT_SECONDS = 5.0  # longest wait for an event that the code under test should bring about at once
# How long a held write waits after what it waited for: time for a prefetch that went further ahead than
# one page to show up on the timeline.
GRACE_SECONDS = 0.2


class Timeline:
    """What happened, in order: ("request", page) when the API starts answering, ("written", page)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self._changed = threading.Condition()

    def note(self, what: str, page: int) -> None:
        with self._changed:
            self.events.append((what, page))
            self._changed.notify_all()

    def wait_for(self, what: str, page: int, times: int = 1) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self.events.count((what, page)) >= times, timeout=WAIT_SECONDS
            )


def page_records(pages: int, per_page: int = 3) -> list[list[str]]:
    """Records whose `updated_at` grows with their position, so each page moves the watermark."""
    serial = itertools.count(1)
    return [
        [
            json.dumps({"order_id": n, "updated_at": f"2026-11-{n:02d}T00:00:00Z"})
            for n in itertools.islice(serial, per_page)
        ]
        for _ in range(pages)
    ]


class PagedApi(LocalServer):
    """Serves `pages[n - 1]` as page n (the cursor is the next page's number). A page in `failing` is
    answered 500, every time; a page in `held` is answered once the test sets its event."""

    def __init__(
        self,
        pages: Sequence[Sequence[str]],
        timeline: Timeline,
        failing: frozenset[int] = frozenset(),
        held: dict[int, threading.Event] | None = None,
    ) -> None:
        holds = held or {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != ORDERS_PATH:
                    send_json(self, EMPTY_PAGE)
                    return
                number = int(parse_qs(urlsplit(self.path).query).get("cursor", ["1"])[0])
                timeline.note("request", number)
                if number in holds:
                    holds[number].wait(WAIT_SECONDS)
                if number in failing:
                    self.send_error(500)
                    return
                next_cursor = str(number + 1) if number < len(pages) else None
                records = ", ".join(pages[number - 1])
                send_json(self, f'{{"data": [{records}], "next_cursor": {json.dumps(next_cursor)}}}')

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True  # a held request must not keep the test waiting on exit
        super().__init__(server)


class TimedStore:
    """A local store that notes each page it wrote; `before_page(n)` runs before page n is written."""

    def __init__(self, root: Path, timeline: Timeline, before_page: Callable[[int], object]) -> None:
        self.store = LocalStore(root)
        self.timeline = timeline
        self.before_page = before_page

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        page = re.search(r"page-(\d+)\.jsonl\.gz$", key)
        if page:
            self.before_page(int(page[1]))
        self.store.put(key, data, content_type)
        if page:
            self.timeline.note("written", int(page[1]))

    def get(self, key: str) -> bytes | None:
        return self.store.get(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.store.list(prefix)

    def uri(self, key: str) -> str:
        return self.store.uri(key)


def after_checks(checks: int) -> Deadline:
    """A deadline reached at the `checks`-th check (one check per page written)."""
    counter = itertools.count(1)
    return Deadline(lambda: checks - next(counter), margin_seconds=0)


def settings_for(url: str, root: Path) -> IngestionSettings:
    source = SourceSettings(base_url=url, page_size=3, backoff_base_seconds=0.0, max_attempts=2)
    return IngestionSettings(source=source, bronze_root=str(root), dataset="orders")


def page_body(records: Sequence[str]) -> bytes:
    """A page object as the sequential loop wrote it: the records as received, gzip at level 6, mtime 0."""
    return gzip.compress(("\n".join(records) + "\n").encode(), compresslevel=6, mtime=0)


def page_objects(root: Path) -> dict[str, bytes]:
    store = LocalStore(root)
    return {key: store.get(key) or b"" for key in store.list("orders/")}


def page_key(number: int) -> str:
    return f"orders/ingestion_date=2026-11-26/run_id=run-1/page-{number:06d}.jsonl.gz"


def write_once_next_requested(timeline: Timeline, last_page: int) -> Callable[[int], None]:
    """Hold page n's write until the API has seen the request for page n + 1 (then a grace period)."""

    def before_page(number: int) -> None:
        if number < last_page and timeline.wait_for("request", number + 1):
            time.sleep(GRACE_SECONDS)

    return before_page


def test_each_page_is_fetched_while_the_one_before_is_written_and_never_two_ahead(tmp_path: Path) -> None:
    pages = page_records(4)
    timeline = Timeline()
    store = TimedStore(tmp_path, timeline, write_once_next_requested(timeline, last_page=4))
    with PagedApi(pages, timeline) as api:
        summary = ingest(settings_for(api.url, tmp_path), "run-1", STARTED, store=store)

    # Request n + 1 starts before page n is written (the overlap); request n + 2 only after (the bound).
    assert timeline.events == [
        ("request", 1),
        ("request", 2),
        ("written", 1),
        ("request", 3),
        ("written", 2),
        ("request", 4),
        ("written", 3),
        ("written", 4),
    ]
    assert page_objects(tmp_path) == {page_key(n): page_body(pages[n - 1]) for n in (1, 2, 3, 4)}
    assert (summary.pages, summary.records, summary.objects, summary.has_more) == (4, 12, 4, False)


def test_a_run_stopped_at_its_deadline_drops_the_page_in_flight_without_waiting_for_it(
    tmp_path: Path,
) -> None:
    pages = page_records(5)
    timeline = Timeline()
    page_3_answered = threading.Event()
    store = TimedStore(tmp_path, timeline, write_once_next_requested(timeline, last_page=5))
    with PagedApi(pages, timeline, held={3: page_3_answered}) as api:
        began = time.monotonic()
        ingest(settings_for(api.url, tmp_path), "run-1", STARTED, store=store, deadline=after_checks(2))
        returned_after = time.monotonic() - began
        page_3_answered.set()
        time.sleep(GRACE_SECONDS)  # the abandoned request ends; nothing may come of it

    assert returned_after < WAIT_SECONDS  # it did not wait for page 3, which the API held back
    assert timeline.events == [("request", 1), ("request", 2), ("written", 1), ("request", 3), ("written", 2)]
    manifest = read_manifest(LocalStore(tmp_path), LAYOUT, "run-1")
    assert manifest is not None
    assert [obj.key for obj in manifest.objects] == [page_key(1), page_key(2)]
    assert (manifest.pages, manifest.records, manifest.has_more) == (2, 6, True)
    assert manifest.watermark == "2026-11-06T00:00:00Z"  # the newest record of page 2, not of page 3
    assert read_watermark(LocalStore(tmp_path), LAYOUT) == parse_rfc3339(manifest.watermark)
    assert page_objects(tmp_path) == {page_key(n): page_body(pages[n - 1]) for n in (1, 2)}


def test_a_failing_page_in_flight_at_the_deadline_does_not_fail_the_run(tmp_path: Path) -> None:
    pages = page_records(4)
    timeline = Timeline()
    # Page 2's write waits until page 3 has failed for good, so its error is there before the check.
    store = TimedStore(tmp_path, timeline, lambda n: n == 2 and timeline.wait_for("request", 3, times=2))
    with PagedApi(pages, timeline, failing=frozenset({3})) as api:
        summary = ingest(
            settings_for(api.url, tmp_path), "run-1", STARTED, store=store, deadline=after_checks(2)
        )

    assert (summary.pages, summary.records, summary.has_more) == (2, 6, True)
    assert summary.watermark == "2026-11-06T00:00:00Z"
    assert read_watermark(LocalStore(tmp_path), LAYOUT) == parse_rfc3339(summary.watermark)


def test_a_fetch_error_after_two_pages_leaves_what_the_sequential_loop_left(tmp_path: Path) -> None:
    pages = page_records(4)
    timeline = Timeline()
    # Page 2's write waits until both attempts at page 3 have failed: its error is known before page 2
    # is written, and must still wait until it is.
    store = TimedStore(tmp_path, timeline, lambda n: n == 2 and timeline.wait_for("request", 3, times=2))
    with PagedApi(pages, timeline, failing=frozenset({3})) as api, pytest.raises(SourceError, match="page 3"):
        ingest(settings_for(api.url, tmp_path), "run-1", STARTED, store=store)

    assert timeline.events[-1] == ("written", 2)
    assert ("request", 4) not in timeline.events
    # The two pages before the failure, as the sequential loop wrote them; no manifest, no watermark.
    assert page_objects(tmp_path) == {page_key(n): page_body(pages[n - 1]) for n in (1, 2)}
    assert read_manifest(LocalStore(tmp_path), LAYOUT, "run-1") is None
    assert read_watermark(LocalStore(tmp_path), LAYOUT) is None


def test_every_page_is_fetched_on_one_thread_other_than_the_callers(tmp_path: Path) -> None:
    pages = page_records(3)
    timeline = Timeline()
    store = TimedStore(tmp_path, timeline, lambda n: None)
    with PagedApi(pages, timeline) as api:
        settings = settings_for(api.url, tmp_path)
        threads: list[str] = []

        class RecordingClient(SourceClient):
            def _fetch(self, params: dict[str, str], number: int) -> tuple[ParsedPage, int]:
                threads.append(threading.current_thread().name)
                return super()._fetch(params, number)

        ingest(settings, "run-1", STARTED, store=store, client=RecordingClient(settings.source))

    assert len(threads) == 3 and len(set(threads)) == 1
    assert threads[0] != threading.current_thread().name
