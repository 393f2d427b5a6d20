"""The Bronze Lambda function: parses the event and runs one ingestion, bounded by the invocation's time.

Event (from the state machine): {"run_id": "<execution name>", "started_at": "<RFC 3339>", "iteration": n,
"dataset": "<name>"}; a manual invocation may leave out all but the dataset, or give that as
LAKEHOUSE_DATASET instead: no dataset is assumed. It names a declaration under datasets/ (etl/registry.py),
which gives the path and paging of its source. The n-th ingestion of an execution is its own run, with the
id `<execution name>-<n, three digits>`. Returns the ingestion summary, which the state machine
(`has_more`) and the Silver step read.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from etl import metrics, registry
from etl.bronze.deadline import Deadline
from etl.bronze.ingest import ingest
from etl.bronze.layout import new_run_id, validate_run_id
from etl.bronze.secrets import TokenError, resolve_token
from etl.bronze.settings import IngestionSettings, SettingsError
from etl.bronze.source import SourceError
from etl.dataset import Dataset
from etl.pipeline import BRONZE, MAX_ITERATION
from etl.timestamps import parse_rfc3339, utc_now

logger = Logger(service="lakehouse")


class InvalidEvent(ValueError):
    """The event does not say which run to perform."""


def parse_event(event: dict[str, Any]) -> tuple[str, datetime]:
    """The run id and start time the event asks for; a missing one is made up."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event must be a JSON object, got {type(event).__name__}")
    started_at = utc_now()
    if event.get("started_at") is not None:
        parsed = parse_rfc3339(str(event["started_at"]))
        if parsed is None:
            raise InvalidEvent(f"started_at must be an RFC 3339 date-time, got {event['started_at']!r}")
        started_at = parsed
    run_id = str(event.get("run_id") or new_run_id(started_at))
    if event.get("iteration") is not None:
        run_id = f"{run_id}-{_iteration(event['iteration']):03d}"
    try:
        validate_run_id(run_id)
    except ValueError as e:
        raise InvalidEvent(f"{e}; name the execution with those characters only") from e
    return run_id, started_at


def _dataset(event: dict[str, Any], settings: IngestionSettings) -> Dataset:
    name = event.get("dataset") or settings.dataset
    try:
        return registry.dataset(str(name))
    except registry.UnknownDataset as e:
        raise InvalidEvent(str(e)) from e


def _iteration(value: Any) -> int:
    text = str(value)
    if (
        isinstance(value, bool)
        or not text.isascii()
        or not text.isdigit()
        or not 1 <= int(text) <= MAX_ITERATION
    ):
        raise InvalidEvent(f"iteration must be a whole number from 1 to {MAX_ITERATION}, got {value!r}")
    return int(text)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Lambda entry point: settings from the environment the infrastructure set."""
    try:
        settings = IngestionSettings.from_environment(os.environ, dataset=_dataset_name(event))
    except SettingsError:
        logger.exception("Ingestion misconfigured")
        raise
    with metrics.published_run(
        metrics.namespace_from_environment(os.environ),
        BRONZE.name,
        settings.dataset,
        publish=publish_with_powertools,
    ) as published:
        result = run(event, settings, Deadline.of_lambda(context, settings.source.timeout_seconds))
        published.counts.update(ingestion_metrics(result))
    return result


def ingestion_metrics(result: dict[str, Any]) -> dict[str, int]:
    """The counts an ingestion run publishes, from its summary."""
    return {metrics.RECORDS_INGESTED: int(result["records"]), metrics.PAGES: int(result["pages"])}


def publish_with_powertools(run: metrics.RunMetrics) -> None:
    """Print the run's EMF line with Powertools Metrics: the same namespace, dimension sets and metrics as
    the Spark jobs' lines (etl/metrics.py), which the alarms and the dashboard read."""
    # An empty service rather than POWERTOOLS_SERVICE_NAME, which would add a `service` dimension to the
    # per-step set and hide the runs from the step's alarms.
    emitter = EphemeralMetrics(namespace=run.namespace, service="")
    (per_step, *more) = metrics.dimension_sets(run.dataset)
    for name in per_step:
        emitter.add_dimension(name=name, value=run.dimensions[name])
    for names in more:
        emitter.add_dimensions(**{name: run.dimensions[name] for name in names})
    for name, (value, unit) in run.values().items():
        emitter.add_metric(name=name, unit=MetricUnit(unit), value=value)
    emitter.flush_metrics()


def _dataset_name(event: Any) -> str | None:
    """The dataset the event names, if any: it wins over the environment's."""
    named = event.get("dataset") if isinstance(event, dict) else None
    return str(named) if named else None


def run(
    event: dict[str, Any], settings: IngestionSettings, deadline: Deadline | None = None
) -> dict[str, Any]:
    """Run the ingestion the event asks for; the local runner calls this with its own settings and budget."""
    try:
        run_id, started_at = parse_event(event)
        settings = settings.for_dataset(_dataset(event, settings))
        logger.append_keys(run_id=run_id, dataset=settings.dataset)
        summary = ingest(settings, run_id, started_at, token=resolve_token(settings), deadline=deadline)
    except (InvalidEvent, SettingsError, TokenError, SourceError) as e:
        # The error's type reaches Step Functions as the task's error name; the message says what to fix.
        logger.exception("Ingestion failed", extra={"error": type(e).__name__})
        raise
    return summary.as_dict()
