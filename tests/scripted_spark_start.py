"""Step modules for the runner's test of starting Spark beside the steps before the first Spark step."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from etl.bronze.deadline import Deadline
from etl.bronze.settings import IngestionSettings

# Set by the test's Spark factory; the source step waits for it (at most 10 s), as an ingestion waits on
# its source, and records whether Spark started meanwhile.
spark_started = threading.Event()
saw_spark_start: list[bool] = []
sessions: list[object] = []


def run(event: dict[str, Any], settings: IngestionSettings, deadline: Deadline) -> dict[str, Any]:
    saw_spark_start.append(spark_started.wait(timeout=10))
    return {"run_id": event["run_id"]}


class SparkStep:
    """The Spark step: records the session it was given."""

    @staticmethod
    def parse_args(argv: Sequence[str]) -> list[str]:
        return list(argv)

    @staticmethod
    def run(spark: object, args: list[str]) -> dict[str, Any]:
        sessions.append(spark)
        return {"done": True}
