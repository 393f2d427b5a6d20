"""Fetch the next page while the current one is written: ingestion at the speed of the source.

`Prefetched` runs an iterator (the source client's pages) on one background thread and keeps exactly one
item in flight: item n+1 is asked for when item n is handed out, and item n+2 only once the caller asks
for n+1, that is after it has written n. So at most two pages are in memory (the one being written, the
one being fetched), whatever the size of the pull, and the source sees one request at a time, as before.

The iterator runs on that one thread only (a `requests.Session` is not shared between threads), and its
errors are raised to the caller when it asks for the item that failed: after every earlier item was
handed out and written, exactly where a sequential loop would raise them.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, Self, TypeVar, cast

T = TypeVar("T")

_END = object()  # the iterator is exhausted (StopIteration cannot cross a future into a generator)


class Prefetched(Generic[T]):
    """Iterates `items` one item ahead of the caller, in a `with` block that abandons the item in flight."""

    def __init__(self, items: Iterator[T], thread_name: str = "source-prefetch") -> None:
        self._items = items
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._pending: Future[object] | None = None

    def __iter__(self) -> Iterator[T]:
        self._pending = self._executor.submit(next, self._items, _END)
        while True:
            item = self._pending.result()  # re-raises what fetching it raised
            if item is _END:
                return
            self._pending = self._executor.submit(next, self._items, _END)
            yield cast(T, item)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop fetching. An item still in flight is abandoned, not awaited: the caller stopped before it
        (at its deadline, or on an error), so nothing waits on its request, its retries or its error; the
        thread ends with that one request and its result is dropped."""
        if self._pending is not None:
            self._pending.cancel()  # only succeeds while it has not started
        self._executor.shutdown(wait=False, cancel_futures=True)
