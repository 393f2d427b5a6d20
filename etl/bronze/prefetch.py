"""Fetch the next page while the current one is written: ingestion at the speed of the source.

`Prefetched` runs an iterator (the source client's pages) on one background thread, one item ahead of
the caller and no more: item k is fetched once the caller has asked for item k - 1, that is once it is
done with item k - 2. So page n + 1 is fetched while page n is written, page n + 2 only after page n is
written, and at most two pages are in memory whatever the size of the pull; the source still sees one
request at a time. When the fetching is the slower side, the thread goes from one item to the next
without waiting for the caller to wake up: the caller is already waiting for the item it hands over.

The iterator runs on that one thread only (a `requests.Session` is not shared between threads). Its
errors reach the caller when it asks for the item that failed: after every earlier item was handed out
and written, exactly where a sequential loop would raise them.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Self, TypeVar, cast

T = TypeVar("T")

_END = object()  # the iterator is exhausted


class _Failure:
    """What fetching an item raised, handed to the caller to raise where it asks for that item."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetched(Generic[T]):
    """Iterates `items` one item ahead of the caller, in a `with` block that abandons the item in flight."""

    def __init__(self, items: Iterator[T], thread_name: str = "source-prefetch") -> None:
        self._items = items
        self._changed = threading.Condition()
        self._asked = 0  # items the caller has asked for
        # Fetched, not taken yet, in order: an item, _END or a _Failure. Two only while the caller, which
        # asked for the first, has not woken up yet to take it.
        self._ready: deque[object] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._fetch_ahead, name=thread_name, daemon=True)

    def __iter__(self) -> Iterator[T]:
        self._thread.start()  # a second iteration fails here: the items are gone
        while True:
            with self._changed:
                self._asked += 1
                self._changed.notify_all()
                self._changed.wait_for(lambda: bool(self._ready))
                outcome = self._ready.popleft()
            if isinstance(outcome, _Failure):
                raise outcome.error
            if outcome is _END:
                return
            yield cast(T, outcome)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop fetching. An item in flight is abandoned, not awaited: the caller stopped before it (at its
        deadline, or on an error), so nothing waits on its request, its retries or its error; the thread
        ends with that one request and its result is dropped."""
        with self._changed:
            self._closed = True
            self._ready.clear()
            self._changed.notify_all()

    def _may_fetch(self, item: int) -> bool:
        """Item k once the caller has asked for item k - 1, that is once it is done with item k - 2."""
        return self._closed or self._asked >= item - 1

    def _fetch_ahead(self) -> None:
        for fetching in itertools.count(1):
            with self._changed:
                self._changed.wait_for(functools.partial(self._may_fetch, fetching))
                if self._closed:
                    return
            outcome: object
            try:
                outcome = next(self._items, _END)
            except BaseException as error:
                outcome = _Failure(error)
            with self._changed:
                if self._closed:
                    return
                self._ready.append(outcome)
                self._changed.notify_all()
            if outcome is _END or isinstance(outcome, _Failure):
                return
