"""How long an ingestion run may keep fetching pages: Lambda's remaining time, or a local time budget.

A run checks its deadline between pages, and stops there (committing what it wrote) once less than the
margin is left: the margin is room for one more page request and the commit. The next page is already in
flight by then (it is fetched while the last one is written): a run that stops drops it, unwritten.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Writing the manifest and the watermark: two small objects.
COMMIT_SECONDS = 15.0


class RemainingTime(Protocol):
    """What the Lambda context offers (aws_lambda_powertools' LambdaContext has it too)."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    remaining_seconds: Callable[[], float]
    margin_seconds: float = 0.0

    def reached(self) -> bool:
        return self.remaining_seconds() <= self.margin_seconds

    @classmethod
    def never(cls) -> Deadline:
        return cls(lambda: math.inf)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A local budget: stop asking for pages `seconds` from now."""
        end = clock() + seconds
        return cls(lambda: end - clock())

    @classmethod
    def of_lambda(cls, context: RemainingTime, request_timeout_seconds: float) -> Deadline:
        """Stop while one more request (up to its timeout) and the commit still fit in the invocation.

        A page that needs retries can still outlast the margin; then Lambda ends the invocation, nothing
        of it is committed, and the next one repeats its window.
        """
        return cls(
            lambda: context.get_remaining_time_in_millis() / 1000,
            margin_seconds=request_timeout_seconds + COMMIT_SECONDS,
        )
