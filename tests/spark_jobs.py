"""Counting the Spark jobs a block of code starts, to hold the jobs' fixed costs down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession


@contextmanager
def spark_jobs(spark: SparkSession) -> Iterator[list[int]]:
    """The ids of the Spark jobs started in the block (by this thread), filled in when it ends."""
    context, group = spark.sparkContext, f"counted-{uuid.uuid4().hex[:8]}"
    started: list[int] = []
    context.setJobGroup(group, "jobs counted by a test")
    try:
        yield started
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        started += context.statusTracker().getJobIdsForGroup(group)
