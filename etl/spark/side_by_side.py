"""Independent pieces of work run side by side in one Spark application, each in a thread of its own.

Spark schedules the jobs of several threads at once: the cores one leaves idle (while the driver plans it
or commits it, or in a stage with fewer tasks than cores) go to another's tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from pyspark import InheritableThread

T = TypeVar("T")


def side_by_side(tasks: Sequence[Callable[[], T]], at_once: int, name: str) -> list[T]:
    """Run the tasks, at most `at_once` at a time; their results in the tasks' order.

    A task that fails does not stop the others: every task runs to its end, then the first failure (in
    the tasks' order) is raised. Each thread inherits the caller's Spark local properties (its job group,
    scheduler pool), as a thread started by Spark would.
    """
    results: dict[int, T] = {}
    failures: dict[int, BaseException] = {}
    waiting = iter(enumerate(tasks))
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                index, task = next(waiting, (-1, None))
            if task is None:
                return
            try:
                results[index] = task()
            except BaseException as failure:  # raised in the caller's thread below
                failures[index] = failure

    workers = min(at_once, len(tasks))
    if workers <= 1:
        work()  # in the caller's thread
    else:
        threads = [InheritableThread(target=work, name=f"{name}-{n}", daemon=True) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[min(failures)]
    return [results[index] for index in range(len(tasks))]
