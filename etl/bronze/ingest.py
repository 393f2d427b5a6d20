"""Bronze ingestion: one run pulls what changed since the watermark and lands it as gzip JSON Lines.

Order of writes, so that a failure never loses or double counts records:
1. one object per page, under keys fixed by run id and page number (a retried run overwrites them);
2. the run manifest, listing the objects (the Silver job reads only runs with a manifest);
3. the watermark, advanced to the highest `updated_at` ingested.
A run that fails before 3 leaves the watermark untouched, so the next run repeats the same window.

A run is bounded: once its deadline is near it stops between two pages, commits what it wrote (2 and
3) and reports `has_more`; the next run goes on from the watermark. That is safe because the source serves
the oldest change first and `updated_since` is inclusive: every record not fetched yet changed at or
after the newest `updated_at` fetched. The records at that instant are fetched again (at least once).
"""

from __future__ import annotations

import gzip
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from etl.bronze.deadline import Deadline
from etl.bronze.layout import (
    MAX_CLOCK_SKEW,
    BronzeLayout,
    BronzeObject,
    RunManifest,
    read_manifest,
    read_watermark,
    validate_run_id,
    write_watermark,
)
from etl.bronze.prefetch import Prefetched
from etl.bronze.settings import IngestionSettings, SettingsError
from etl.bronze.source import Page, SourceClient
from etl.storage import ObjectStore, open_store
from etl.timestamps import format_rfc3339, parse_rfc3339, utc_now

logger = Logger(service="lakehouse", child=True)


@dataclass(frozen=True)
class IngestionSummary:
    run_id: str
    dataset: str
    manifest: str  # where the run manifest is
    pages: int
    records: int
    objects: int
    updated_since: str
    watermark: str
    has_more: bool  # stopped at its deadline: run again to fetch the rest

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(
    settings: IngestionSettings,
    run_id: str,
    started_at: datetime | None = None,
    *,
    token: str | None = None,
    store: ObjectStore | None = None,
    client: SourceClient | None = None,
    deadline: Deadline | None = None,
) -> IngestionSummary:
    """Run one ingestion; `started_at` defaults to now and fixes the ingestion date of the keys.

    With a `deadline`, the run stops asking for pages once it is reached and reports `has_more`.
    """
    validate_run_id(run_id)
    started = started_at or utc_now()
    store = store or open_store(settings.bronze_root)
    layout = BronzeLayout(settings.dataset)
    finished = read_manifest(store, layout, run_id)
    if finished is not None:
        # The run already finished (a redrive, or a retry after a lost response): pulling again would
        # start from the advanced watermark and overwrite its pages with a different window.
        logger.info("Ingestion run already finished", extra={"run_id": run_id})
        return _summary(finished, store.uri(layout.manifest_key(run_id)))
    client = client or SourceClient(settings.source, token)
    deadline = deadline or Deadline.never()

    since = read_watermark(store, layout) or _initial_watermark(settings)
    updated_since = format_rfc3339(since)
    logger.info("Ingestion started", extra={"run_id": run_id, "updated_since": updated_since})

    watermark = since
    future_limit = started + MAX_CLOCK_SKEW
    objects: list[BronzeObject] = []
    pages = records = 0
    has_more = False
    # The next page is fetched while this one is written (etl/extract/prefetch.py); a run stopped at its
    # deadline drops it, neither written nor counted, so pages, watermark and has_more stay as they were.
    # Its error is raised after this page is written: the objects a failed run leaves stay the same as before.
    with Prefetched(client.pages(updated_since)) as fetched:
        for page in fetched:
            pages = page.number
            if page.records:
                objects.append(_land_page(store, layout, run_id, started, page))
                records += len(page.records)
                watermark = max(watermark, _newest_change(page, future_limit, default=watermark))
            # Stop only where the watermark has moved past where this run started: the next run asks from
            # the watermark on, inclusive, so a run stopped among records that all carry its starting
            # updated_at would hand the next run the very same pages, forever. Such a run goes on past its
            # deadline until a newer record (or the last page) comes.
            if not page.last and watermark > since and deadline.reached():
                has_more = True
                logger.info("Deadline reached: stopping between pages", extra={"page": page.number})
                break

    manifest = RunManifest(
        run_id=run_id,
        dataset=settings.dataset,
        started_at=format_rfc3339(started),
        finished_at=format_rfc3339(utc_now()),
        updated_since=updated_since,
        watermark=format_rfc3339(watermark),
        pages=pages,
        records=records,
        objects=tuple(objects),
        has_more=has_more,
    )
    manifest_key = layout.manifest_key(run_id)
    store.put(manifest_key, manifest.to_json(), "application/json")
    write_watermark(store, layout, watermark, run_id)

    summary = _summary(manifest, store.uri(manifest_key))
    logger.info("Ingestion finished", extra=summary.as_dict())
    return summary


def _land_page(
    store: ObjectStore, layout: BronzeLayout, run_id: str, started: datetime, page: Page
) -> BronzeObject:
    """Write the page's records as one gzip JSON Lines object."""
    lines = "\n".join(text for text, _ in page.records) + "\n"
    # mtime=0: the same page always compresses to the same bytes.
    body = gzip.compress(lines.encode("utf-8"), compresslevel=6, mtime=0)
    key = layout.page_key(run_id, started, page.number)
    store.put(key, body, "application/gzip")
    logger.debug("Page written", extra={"page": page.number, "records": len(page.records), "key": key})
    return BronzeObject(key=key, records=len(page.records), bytes=len(body))


def _newest_change(page: Page, future_limit: datetime, default: datetime) -> datetime:
    """The newest `updated_at` on the page that is not past `future_limit` (else `default`)."""
    changes = (_updated_at(value) for _, value in page.records)
    return max((c for c in changes if c is not None and c <= future_limit), default=default)


def _summary(manifest: RunManifest, location: str) -> IngestionSummary:
    return IngestionSummary(
        run_id=manifest.run_id,
        dataset=manifest.dataset,
        manifest=location,
        pages=manifest.pages,
        records=manifest.records,
        objects=len(manifest.objects),
        updated_since=manifest.updated_since,
        watermark=manifest.watermark,
        has_more=manifest.has_more,
    )


def _initial_watermark(settings: IngestionSettings) -> datetime:
    instant = parse_rfc3339(settings.source.initial_watermark)
    if instant is None:
        raise SettingsError(
            f"the initial watermark must be an RFC 3339 date-time, got {settings.source.initial_watermark!r}"
        )
    return instant


def _updated_at(record: Any) -> datetime | None:
    if isinstance(record, dict):
        value = record.get("updated_at")
        if isinstance(value, str):
            return parse_rfc3339(value)
    return None
