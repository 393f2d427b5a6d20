"""A FUNCTION step module for runner tests: returns scripted results and records the events it got."""

from __future__ import annotations

from typing import Any

from etl.bronze.deadline import Deadline
from etl.bronze.settings import IngestionSettings

events: list[dict[str, Any]] = []
has_more: list[bool] = []  # what the next runs answer, in order; False once used up


def run(event: dict[str, Any], settings: IngestionSettings, deadline: Deadline) -> dict[str, Any]:
    events.append(dict(event))
    more = has_more.pop(0) if has_more else False
    return {"run_id": f"{event['run_id']}-{event['iteration']:03d}", "has_more": more}
