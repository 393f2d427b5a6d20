"""Per-run metrics of the pipeline's steps, as CloudWatch embedded metric format (EMF) lines.

A step prints one JSON line per run to its log; CloudWatch Logs turns it into metrics, so publishing needs
no API call and no permission beyond writing logs. The names below are the one vocabulary of the metrics:
the emitters (the function's handler, the Spark jobs' `main`) and the alarms and dashboard declared in
components/monitoring.py both use them. Pure Python: no Spark, no Pulumi.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Where the infrastructure tells a step which namespace to publish to: the function's environment and the
# Spark jobs' arguments. Without it (a local run) a step publishes nothing.
ENV_METRICS_NAMESPACE = "LAKEHOUSE_METRICS_NAMESPACE"
METRICS_NAMESPACE = "--metrics-namespace"
NAMESPACE_ROOT = "Lakehouse"

# Dimensions: every metric is published per step, and a step run once per dataset also per dataset.
DATASET = "Dataset"
STEP = "Step"

# Metrics every step publishes per run.
DURATION = "DurationSeconds"
FAILURES = "Failures"  # 1 for a run that raised, 0 for one that finished
# Counts a step declares it publishes (etl.pipeline.Step.metrics).
RECORDS_INGESTED = "RecordsIngested"
PAGES = "Pages"
RECORDS_READ = "RecordsRead"
RECORDS_ACCEPTED = "RecordsAccepted"
RECORDS_QUARANTINED = "RecordsQuarantined"
RECORDS_MERGED = "RecordsMerged"
# Audits of the run's branch that failed (etl/audit/checks.py); one metric per audit and table besides
# (see audit_result): 1 failed, 0 passed.
AUDITS_FAILED = "AuditsFailed"
AUDIT = "Audit"
# Rows of each table the step writes, one metric per table (see table_rows).
TABLE_ROWS = "Rows"

SECONDS = "Seconds"
COUNT = "Count"


def namespace_of(stack: str) -> str:
    """The namespace of a stack's metrics, e.g. Lakehouse/dev."""
    return f"{NAMESPACE_ROOT}/{stack}"


def table_rows(table: str) -> str:
    """The metric of a table's row count after a run, e.g. Rows.daily_sales."""
    return f"{TABLE_ROWS}.{table}"


def audit_result(audit: str, table: str) -> str:
    """The metric of one audit's outcome, e.g. Audit.quarantine_rate.silver.orders."""
    return f"{AUDIT}.{audit}.{table}"


def dimension_sets(dataset: str | None) -> list[list[str]]:
    """Per step (what the step's alarms watch) and, for a per-dataset step, per dataset and step."""
    return [[STEP]] if dataset is None else [[STEP], [DATASET, STEP]]


@dataclass
class RunMetrics:
    """The metrics of one run of one step, filled in while it runs."""

    namespace: str
    step: str
    dataset: str | None = None
    counts: dict[str, float] = field(default_factory=dict)  # whole counts, and audit measures
    duration_seconds: float = 0.0
    failed: bool = False

    @property
    def dimensions(self) -> dict[str, str]:
        return {STEP: self.step, **({DATASET: self.dataset} if self.dataset is not None else {})}

    def values(self) -> dict[str, tuple[float, str]]:
        """Each metric's value and unit."""
        return {
            **{name: (value, COUNT) for name, value in self.counts.items()},
            DURATION: (round(self.duration_seconds, 3), SECONDS),
            FAILURES: (1 if self.failed else 0, COUNT),
        }

    def line(self, timestamp_ms: int | None = None) -> str:
        """The run as one EMF line (JSON)."""
        values = self.values()
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": dimension_sets(self.dataset),
                        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
                    }
                ],
            },
            **self.dimensions,
            **{name: value for name, (value, _) in values.items()},
        }
        return json.dumps(document, separators=(",", ":"))


def print_line(run: RunMetrics) -> None:
    """Publish through the log: one line per log event, flushed (EMF is read from whole events)."""
    print(run.line(), file=sys.stdout, flush=True)


@contextmanager
def published_run(
    namespace: str | None,
    step: str,
    dataset: str | None = None,
    *,
    publish: Callable[[RunMetrics], None] = print_line,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[RunMetrics]:
    """Time the block and publish its metrics when it ends, also when it raises (then with Failures 1).
    The block sets the counts on the RunMetrics it gets. No namespace (a local run): nothing is published."""
    metrics = RunMetrics(namespace or "", step, dataset)
    started = clock()
    try:
        yield metrics
    except BaseException:
        metrics.failed = True
        raise
    finally:
        metrics.duration_seconds = clock() - started
        if namespace:
            publish(metrics)


def namespace_argument(argv: Sequence[str]) -> str | None:
    """The `--metrics-namespace` of a Spark job's arguments, if any (the job's own parser ignores it)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(METRICS_NAMESPACE, default=None)
    known, _ = parser.parse_known_args(list(argv))
    value: str | None = known.metrics_namespace
    return value or None


def namespace_from_environment(environ: Mapping[str, str]) -> str | None:
    return environ.get(ENV_METRICS_NAMESPACE) or None
