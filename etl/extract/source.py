"""The source API client: follows the cursor page by page and retries what is transient.

Transient: 429 (waiting at least its Retry-After), 5xx, timeouts, connection errors, and bodies that are
not a valid page. Those are retried with exponential backoff and full jitter, a bounded number of
times. Anything else (401, 404, ...) fails at once: retrying cannot fix it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from aws_lambda_powertools import Logger

from etl.extract.page_parser import ContractViolation, MalformedPage, ParsedPage, parse_page
from etl.extract.settings import SourceSettings

logger = Logger(service="lakehouse", child=True)


class SourceError(RuntimeError):
    """The source API could not be read; the message says what failed and what to check."""


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Page:
    number: int  # 1-based position in this run
    records: list[tuple[str, Any]]  # (exact JSON text, parsed value)
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
        number = 0
        while True:
            number += 1
            parsed, attempts = self._fetch(params, number)
            yield Page(number, parsed.records, attempts, last=parsed.next_cursor is None)
            if parsed.next_cursor is None:
                return
            if parsed.next_cursor == params.get(s.cursor_param):
                raise SourceError(
                    f"the source API returned the cursor it was given ({parsed.next_cursor!r}) on page "
                    f"{number}: its pagination would never end"
                )
            params[s.cursor_param] = parsed.next_cursor

    def _fetch(self, params: dict[str, str], number: int) -> tuple[ParsedPage, int]:
        s = self.settings
        for attempt in range(1, s.max_attempts + 1):
            try:
                return self._fetch_once(params), attempt
            except _Transient as problem:
                if attempt == s.max_attempts:
                    raise SourceError(
                        f"the source API at {s.url} failed {attempt} times on page {number}; last error: "
                        f"{problem.reason}. Check that the API is up, or raise SOURCE_MAX_ATTEMPTS."
                    ) from problem
                delay = self._backoff(attempt, problem.retry_after)
                logger.warning(
                    f"Source request for page {number} failed ({problem.reason}); "
                    f"retry {attempt} in {delay:.1f} s",
                    extra={"page": number, "attempt": attempt, "reason": problem.reason, "delay_s": delay},
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_once(self, params: dict[str, str]) -> ParsedPage:
        s = self.settings
        try:
            response = self._session.get(
                s.url, params=params, headers=self._headers, timeout=s.timeout_seconds
            )
        except requests.Timeout as e:
            raise _Transient(f"no answer within {s.timeout_seconds:g} s") from e
        except requests.RequestException as e:  # connection refused or reset, truncated body, ...
            raise _Transient(f"{type(e).__name__}: {e}") from e
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
        if status != 200:
            raise SourceError(
                f"the source API answered {status} {response.reason} for {s.url}: {_excerpt(response)}"
            )
        try:
            # utf-8-sig: JSON has no byte order mark, but some servers send one.
            return parse_page(response.content.decode("utf-8-sig"), s.data_field, s.next_cursor_field)
        except ContractViolation as e:
            raise SourceError(
                f"the source API at {s.url} does not follow the page contract: {e} "
                f"(see SOURCE_DATA_FIELD and SOURCE_NEXT_CURSOR_FIELD): {_excerpt(response)}"
            ) from e
        except (UnicodeDecodeError, MalformedPage) as e:
            raise _Transient(f"unreadable page ({e}): {_excerpt(response)}") from e

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


def _excerpt(response: requests.Response, limit: int = 200) -> str:
    text = response.content[:limit].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(response.content) > limit else "")
