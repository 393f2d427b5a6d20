"""The source API client: follows the cursor page by page and retries what is transient.

Transient: 429 (waiting at least its Retry-After), 5xx, timeouts, connection errors, and bodies that are
not JSON. Those are retried with exponential backoff and full jitter, a bounded number of times.
Anything else (401, 404, a page that breaks the contract, a cursor seen before, a body larger than
SOURCE_MAX_BODY_BYTES, a redirect to another host, ...) fails at once: retrying cannot fix it.

Each request has one deadline, SOURCE_TIMEOUT_SECONDS, for connecting and receiving the whole answer;
the answer is streamed and counted, never held beyond SOURCE_MAX_BODY_BYTES.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from aws_lambda_powertools import Logger
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from etl.bronze.page_parser import ContractViolation, MalformedPage, ParsedPage, parse_page
from etl.bronze.settings import SOURCE_ENV, SourceSettings

logger = Logger(service="lakehouse", child=True)

# Redirects followed within the configured host, per request.
MAX_REDIRECTS = 5
_CHUNK_BYTES = 64 * 1024
_EXCERPT_BYTES = 200
_UP_OR_MORE_ATTEMPTS = f"Check that the API is up, or raise {SOURCE_ENV['max_attempts']}"


class SourceError(RuntimeError):
    """The source API could not be read; the message says what failed and what to check."""


class _Transient(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, remedy: str = _UP_OR_MORE_ATTEMPTS
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.remedy = remedy  # what to do when the last attempt fails too


@dataclass(frozen=True)
class Page:
    number: int  # 1-based position in this run
    records: list[tuple[str, Any]]  # (Bronze line, parsed value): see page_parser.ParsedPage
    attempts: int
    last: bool = False  # the source said there is no next page


class SourceClient:
    def __init__(
        self,
        settings: SourceSettings,
        token: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._session = session or requests.Session()
        adapter = _DeadlineAdapter()
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, adapter)
        self._origin = _origin(settings.url)
        self._headers = {"Accept": "application/json"}
        if token:
            scheme = settings.auth_scheme.strip()
            self._headers[settings.auth_header] = f"{scheme} {token}" if scheme else token
        self._sleep = sleep
        self._jitter = jitter

    def pages(self, updated_since: str) -> Iterator[Page]:
        """Every page of records changed at or after `updated_since`, fetched one at a time."""
        s = self.settings
        params: dict[str, str] = {s.since_param: updated_since, s.limit_param: str(s.page_size)}
        # Every cursor of the run, with the page that returned it: a cycle of any length ends at once.
        returned_by: dict[str, int] = {}
        number = 0
        while True:
            number += 1
            parsed, attempts = self._fetch(params, number)
            cursor = parsed.next_cursor
            yield Page(number=number, records=parsed.records, attempts=attempts, last=cursor is None)
            if cursor is None:
                return
            if cursor in returned_by:
                raise SourceError(
                    f"the source API returned the cursor {_short(cursor)} on page {number}, as it did on "
                    f"page {returned_by[cursor]}: its pagination loops, so the run stops before its "
                    "manifest; the API must give each page a cursor of its own"
                )
            if number >= s.max_pages:
                raise SourceError(
                    f"the source API has more than {s.max_pages} pages for this run, so it stops before its "
                    f"manifest; if it really holds that many changes, raise {SOURCE_ENV['max_pages']} or "
                    f"{SOURCE_ENV['page_size']}"
                )
            returned_by[cursor] = number
            params[s.cursor_param] = cursor

    def _fetch(self, params: dict[str, str], number: int) -> tuple[ParsedPage, int]:
        s = self.settings
        for attempt in range(1, s.max_attempts + 1):
            try:
                return self._fetch_once(params, number), attempt
            except _Transient as problem:
                if attempt == s.max_attempts:
                    raise SourceError(
                        f"the source API at {s.url} failed {_times(attempt)} on page {number}; last error: "
                        f"{problem.reason}. {problem.remedy}."
                    ) from problem
                delay = self._backoff(attempt, problem.retry_after)
                logger.warning(
                    f"Source request for page {number} failed ({problem.reason}); "
                    f"retry {attempt} in {delay:.1f} s",
                    extra={"page": number, "attempt": attempt, "reason": problem.reason, "delay_s": delay},
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_once(self, params: dict[str, str], number: int) -> ParsedPage:
        s = self.settings
        with _Deadline(s.timeout_seconds) as deadline:
            response = self._get(s.url, params, deadline)
            with response:
                status = response.status_code
                if status == 200:
                    body = self._read_page(response, deadline, number)
                else:
                    excerpt = _excerpt(_stream(response, deadline, _EXCERPT_BYTES + 1)[0])
        if status != 200:
            self._refuse(response, excerpt)
        try:
            return parse_page(body, s.data_field, s.next_cursor_field)
        except ContractViolation as e:
            raise SourceError(
                f"the source API at {s.url} does not follow the page contract: {e} "
                f"(page {number}; see SOURCE_DATA_FIELD and SOURCE_NEXT_CURSOR_FIELD): {_excerpt(body)}"
            ) from e
        except MalformedPage as e:
            raise _Transient(
                f"unreadable page ({e}): {_excerpt(body)}",
                remedy="Its answers are not JSON: check the API (the next run repeats this window)",
            ) from e

    def _get(self, url: str, params: dict[str, str] | None, deadline: _Deadline) -> requests.Response:
        """The answer's status and headers, redirects followed only within the configured host."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.get(
                    url,
                    params=params,
                    headers=self._headers,
                    timeout=(deadline.remaining(), deadline.remaining()),
                    stream=True,
                    # requests would carry a custom auth header (X-Api-Key, ...) to any host it is sent to.
                    allow_redirects=False,
                )
            except requests.RequestException as e:  # connection refused or reset, timeouts, ...
                raise deadline.exceeded() if deadline.expired else _transient_error(e) from e
            if not response.is_redirect:
                return response
            response.close()
            url, params = self._redirect_target(response, url), None
        raise SourceError(f"the source API at {self.settings.url} redirected more than {MAX_REDIRECTS} times")

    def _redirect_target(self, response: requests.Response, url: str) -> str:
        target = urljoin(url, response.headers.get("Location", ""))
        if _origin(target) != self._origin:
            raise SourceError(
                f"the source API at {self._origin} redirected to another host, {_origin(target)}, which is "
                "refused: no record or credential crosses hosts. If the API has moved there, set "
                f"{SOURCE_ENV['base_url']} to it"
            )
        return target

    def _read_page(self, response: requests.Response, deadline: _Deadline, number: int) -> bytearray:
        """The whole body, streamed and counted: one larger than SOURCE_MAX_BODY_BYTES fails the run."""
        limit = self.settings.max_body_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(number, f"{int(declared):,} bytes announced")
        body, complete = _stream(response, deadline, limit)
        if not complete:
            raise self._too_large(number, f"more than {limit:,} bytes received")
        return body

    def _too_large(self, number: int, what: str) -> SourceError:
        return SourceError(
            f"the source API's answer for page {number} is larger than {SOURCE_ENV['max_body_bytes']} "
            f"({self.settings.max_body_bytes:,} bytes): {what}. Lower {SOURCE_ENV['page_size']}, or raise "
            f"{SOURCE_ENV['max_body_bytes']} together with the function's memory"
        )

    def _refuse(self, response: requests.Response, excerpt: str) -> None:
        """Raise what a status other than 200 means."""
        s = self.settings
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > s.backoff_max_seconds:
                raise SourceError(
                    f"the source API asks to wait {retry_after:g} s (429 Retry-After), longer than "
                    f"SOURCE_BACKOFF_MAX_SECONDS ({s.backoff_max_seconds:g} s); "
                    "the next run repeats this window"
                )
            raise _Transient("429 Too Many Requests", retry_after)
        if status >= 500:
            raise _Transient(f"{status} {response.reason}")
        if status in (401, 403):
            raise SourceError(
                f"the source API refused the credentials ({status} {response.reason}); check the token "
                "(SOURCE_API_TOKEN locally, the Secrets Manager secret in AWS)"
            )
        raise SourceError(f"the source API answered {status} {response.reason} for {s.url}: {excerpt}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        s = self.settings
        ceiling = min(s.backoff_max_seconds, s.backoff_base_seconds * 2.0 ** (attempt - 1))
        delay = ceiling * self._jitter()
        # The server knows best how long to wait: never retry before its Retry-After.
        return delay if retry_after is None else max(delay, retry_after)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (HTTP: digits only); None for an HTTP-date or garbage (then: backoff)."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return float(value.strip())


def _excerpt(body: bytes | bytearray, limit: int = _EXCERPT_BYTES) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(body) > limit else "")


def _short(text: str, limit: int = 100) -> str:
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, without credentials; the port only when it is not the default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: compare it as written
        return f"{scheme}://{host}:{parts.netloc.rpartition(':')[2]}"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port is None or port == default else f":{port}")


def _stream(response: requests.Response, deadline: _Deadline, limit: int) -> tuple[bytearray, bool]:
    """(the body, True), or (its start, False) once it passes `limit` bytes: never a chunk more. The
    bytearray is not copied into bytes, which would hold the page twice."""
    body = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                return body, False
    except requests.RequestException as e:  # truncated, reset, or cut at the deadline
        raise deadline.exceeded() if deadline.expired else _transient_error(e) from e
    return body, True


def _transient_error(error: requests.RequestException) -> _Transient:
    return _Transient(f"{type(error).__name__}: {_socket_error(error) or error}")


# urllib3 words a failed connection as its pool's "Max retries exceeded with url: ... (Caused by
# NewConnectionError(...: [Errno 111] Connection refused))", although this client makes its own retries:
# the operating system's error at the end is what happened.
_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def _socket_error(error: requests.RequestException) -> str | None:
    """The operating system's error a connection failed with ("[Errno 111] Connection refused"), if any."""
    found = _OS_ERROR.search(str(error))
    return found.group(0).strip() if found else None


# The deadline of the request in progress on this thread, for the connections it uses.
_current_deadline: ContextVar[_Deadline | None] = ContextVar("_current_deadline", default=None)


class _Deadline:
    """One request's time limit, from connecting to the last byte of the answer.

    A socket timeout bounds each wait for data, not the whole answer: a server that sends a byte every
    second never trips it. So a watchdog thread shuts the connection's socket down when the time is up,
    which ends any read in progress; the request then fails as a timeout (and is retried).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._connection: HTTPConnection | None = None
        self._expired = threading.Event()

    @property
    def expired(self) -> bool:
        return self._expired.is_set() or time.monotonic() >= self.end

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def exceeded(self) -> _Transient:
        return _Transient(
            f"no complete answer within {self.seconds:g} s",
            remedy=f"Check that the API is up, or raise {SOURCE_ENV['timeout_seconds']}",
        )

    def uses(self, connection: HTTPConnection) -> None:
        self._connection = connection

    def cut(self) -> None:
        """The time is up: end the request by shutting its connection's socket down."""
        self._expired.set()
        sock = self._connection.sock if self._connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also under TLS: it wakes a read blocked in another thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._token = _current_deadline.set(self)
        _WATCHDOG.watch(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        _WATCHDOG.release(self)
        _current_deadline.reset(self._token)


class _Watchdog:
    """One thread, started once per process, that cuts every request past its deadline.

    (A thread per request cost a thread start and a join per page, which on a busy machine took longer
    than parsing the page.) It cuts only while holding the lock and only the requests it watches, so once
    `release` returns it never touches that request's connection again, which can go back to the pool.
    """

    # After the first cut, again this often until the request gives up: a connection may only be
    # getting its socket when the time is up.
    RECUT_SECONDS = 0.05

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._watched: set[_Deadline] = set()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline) -> None:
        with self._changed:
            self._watched.add(deadline)
            if self._thread is None or not self._thread.is_alive():  # not yet, or not in a forked child
                self._thread = threading.Thread(target=self._run, name="source-request-deadline", daemon=True)
                self._thread.start()
            elif deadline.end < self._wake_at:
                self._changed.notify()

    def release(self, deadline: _Deadline) -> None:
        with self._changed:
            self._watched.discard(deadline)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                late = [deadline for deadline in self._watched if deadline.end <= now]
                for deadline in late:
                    deadline.cut()
                ends = [deadline.end for deadline in self._watched if deadline.end > now]
                self._wake_at = min([*ends, now + self.RECUT_SECONDS] if late else ends, default=math.inf)
                self._changed.wait(None if self._wake_at == math.inf else self._wake_at - now)


_WATCHDOG = _Watchdog()


def _watched(connection: HTTPConnection) -> None:
    deadline = _current_deadline.get()
    if deadline is not None:
        deadline.uses(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _watched(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)  # a connection kept alive from an earlier request connects no more
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _watched(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections a request's deadline can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
