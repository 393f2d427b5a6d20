"""Work run side by side: at once, results in order, every task run before a failure is raised."""

from __future__ import annotations

import functools
import threading

import pytest
from pyspark.sql import SparkSession

from etl.spark.side_by_side import side_by_side

WAIT = 30  # seconds: a barrier that times out means the tasks ran one after the other


def test_the_tasks_run_at_once_and_their_results_come_in_the_tasks_order() -> None:
    meeting = threading.Barrier(3, timeout=WAIT)

    def task(n: int) -> int:
        meeting.wait()  # passes only once all three tasks are running
        return n * 10

    tasks = [functools.partial(task, n) for n in range(3)]
    assert side_by_side(tasks, at_once=3, name="t") == [0, 10, 20]


def test_no_more_than_at_once_run_together() -> None:
    running, most = 0, 0
    counting = threading.Lock()
    pair = threading.Barrier(2, timeout=WAIT)

    def task() -> None:
        nonlocal running, most
        with counting:
            running += 1
            most = max(most, running)
        pair.wait()  # two at a time, four tasks: the barrier fills twice
        with counting:
            running -= 1

    side_by_side([task] * 4, at_once=2, name="t")
    assert most == 2


@pytest.mark.parametrize("at_once", [1, 2])
def test_a_failure_lets_every_other_task_finish_then_the_first_one_is_raised(at_once: int) -> None:
    finished = []

    def fails(message: str) -> None:
        raise ValueError(message)

    tasks = [lambda: fails("first"), lambda: finished.append("b"), lambda: fails("second")]
    tasks.append(lambda: finished.append("d"))
    with pytest.raises(ValueError, match="first"):
        side_by_side(tasks, at_once=at_once, name="t")
    assert sorted(finished) == ["b", "d"]


def test_one_task_runs_in_the_callers_thread() -> None:
    caller = threading.get_ident()
    assert side_by_side([threading.get_ident], at_once=4, name="t") == [caller]


@pytest.mark.spark
def test_each_thread_inherits_the_callers_spark_local_properties_and_runs_spark_jobs(
    spark: SparkSession,
) -> None:
    context = spark.sparkContext
    context.setLocalProperty("spark.job.description", "gold step")
    try:

        def task(n: int) -> tuple[str | None, int]:
            return context.getLocalProperty("spark.job.description"), spark.range(n).count()

        results = side_by_side([functools.partial(task, n) for n in (3, 5)], at_once=2, name="t")
    finally:
        context.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
    assert results == [("gold step", 3), ("gold step", 5)]
