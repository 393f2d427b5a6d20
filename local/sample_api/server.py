"""The sample source API: the source contract served over HTTP on 127.0.0.1.

`GET /v1/orders?updated_since=<RFC 3339>&limit=<n>&cursor=<opaque>` answers (and `GET /v1/customers` the
same way for the sample customers)
`{"data": [<record>, ...], "next_cursor": "<opaque>" | null}`, ordered by when the source changed each
record; `updated_since` is inclusive. With a token set, requests need `Authorization: Bearer <token>`.
Faults (429, 5xx, timeouts, truncated or non-JSON bodies) can be injected to exercise the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar, Protocol
from urllib.parse import parse_qs, urlsplit

from etl.timestamps import parse_rfc3339
from local.sample_api.customers import CustomerSource
from local.sample_api.generator import EPOCH, SampleSource

ORDERS_PATH = "/v1/orders"
CUSTOMERS_PATH = "/v1/customers"
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


class Fault(Enum):
    RATE_LIMITED = "429"  # 429 with Retry-After
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    SLOW = "slow"  # answers after `slow_seconds`, past the client's timeout
    TRUNCATED = "truncated"  # promises the whole body, sends half, closes the connection
    NOT_JSON = "not_json"  # 200 with an HTML error page
    UNAUTHORIZED = "401"
    NOT_A_PAGE = "not_a_page"  # 200 with JSON that is not a page of the contract
    BYTE_ORDER_MARK = "bom"  # the normal page, prefixed with a UTF-8 byte order mark


@dataclass
class FaultPlan:
    """Faults to inject, one per request in order (None: serve that request normally); once they are
    used up, requests are served normally."""

    faults: deque[Fault | None]
    retry_after: str = "1"  # the Retry-After header of a 429
    slow_seconds: float = 2.0

    @classmethod
    def of(
        cls, faults: Iterable[Fault | None], retry_after: str = "1", slow_seconds: float = 2.0
    ) -> FaultPlan:
        return cls(deque(faults), retry_after, slow_seconds)


class PagedSource(Protocol):
    """Records laid out in batches of slots, each slot changed later than the one before it."""

    @property
    def batches(self) -> int: ...
    def batch_size(self, batch: int) -> int: ...
    def first_slot_at_or_after(self, batch: int, time_us: int) -> int: ...
    def record_text(self, batch: int, slot: int) -> str: ...


class SampleApiServer:
    """Serves `source` on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(
        self,
        source: SampleSource,
        port: int = 0,
        token: str | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.requests: list[str] = []
        handler = type(
            "BoundHandler",
            (_Handler,),
            {
                "sources": {ORDERS_PATH: source, CUSTOMERS_PATH: CustomerSource(source)},
                "token": token,
                "faults": faults or FaultPlan.of([]),
                "lock": threading.Lock(),
                "requests": self.requests,
            },
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sample-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SampleApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> SampleApiServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def encode_cursor(batch: int, slot: int) -> str:
    return base64.urlsafe_b64encode(f"{batch}:{slot}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        batch, slot = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        return int(batch), int(slot)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"invalid cursor {cursor!r}") from e


def first_position(source: PagedSource, updated_since: str | None) -> tuple[int, int]:
    """The first (batch, slot) changed at or after `updated_since`."""
    if updated_since is None:
        return 1, 0
    instant = parse_rfc3339(updated_since)
    if instant is None:
        raise ValueError(f"updated_since must be an RFC 3339 date-time, got {updated_since!r}")
    since_us = (instant - EPOCH) // timedelta(microseconds=1)
    for batch in range(1, source.batches + 1):
        slot = source.first_slot_at_or_after(batch, since_us)
        if slot < source.batch_size(batch):
            return batch, slot
    return source.batches + 1, 0


def page(source: PagedSource, batch: int, slot: int, limit: int) -> tuple[list[str], str | None]:
    """Up to `limit` record texts from (batch, slot) on, and the cursor of the next page."""
    records: list[str] = []
    while batch <= source.batches and len(records) < limit:
        if slot >= source.batch_size(batch):
            batch, slot = batch + 1, 0
            continue
        records.append(source.record_text(batch, slot))
        slot += 1
    if slot >= source.batch_size(batch):
        batch, slot = batch + 1, 0
    more = batch <= source.batches
    return records, encode_cursor(batch, slot) if more else None


class _Handler(BaseHTTPRequestHandler):
    sources: ClassVar[Mapping[str, PagedSource]]
    token: ClassVar[str | None]
    faults: ClassVar[FaultPlan]
    lock: ClassVar[threading.Lock]
    requests: ClassVar[list[str]]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with self.lock:
            self.requests.append(self.path)
            fault = self.faults.faults.popleft() if self.faults.faults else None
        if fault is not None and self._inject(fault):
            return
        source = self.sources.get(url.path)
        if source is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {url.path}"})
            return
        if self.token is not None and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
            return
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
            if limit < 1:
                raise ValueError("limit must be at least 1")
            if "cursor" in query:
                batch, slot = decode_cursor(query["cursor"])
            else:
                batch, slot = first_position(source, query.get("updated_since"))
        except ValueError as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        records, next_cursor = page(source, batch, slot, limit)
        body = '{"data":[' + ",".join(records) + '],"next_cursor":' + json.dumps(next_cursor) + "}"
        if fault == Fault.BYTE_ORDER_MARK:
            body = "\ufeff" + body
        self._send(HTTPStatus.OK, body.encode(), "application/json")

    def _inject(self, fault: Fault) -> bool:
        """Answer with `fault`; False when the fault only delays the normal answer."""
        if fault == Fault.RATE_LIMITED:
            self._json(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"error": "slow down"},
                {"Retry-After": self.faults.retry_after},
            )
        elif fault in (Fault.SERVER_ERROR, Fault.UNAVAILABLE, Fault.UNAUTHORIZED):
            self._json(HTTPStatus(int(fault.value)), {"error": fault.name.lower()})
        elif fault == Fault.NOT_A_PAGE:
            self._json(HTTPStatus.OK, {"orders": [], "next": None})
        elif fault == Fault.NOT_JSON:
            self._send(HTTPStatus.OK, b"<html><body>Gateway error</body></html>", "text/html")
        elif fault == Fault.TRUNCATED:
            body = b'{"data":[{"order_id":1,"customer_id":"C1"'
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) * 2))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
        elif fault == Fault.SLOW:
            time.sleep(self.faults.slow_seconds)
            return False
        elif fault == Fault.BYTE_ORDER_MARK:
            return False
        return True

    def _json(self, status: HTTPStatus, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Requests are recorded in `requests`, not printed."""
