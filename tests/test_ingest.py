"""Bronze ingestion end to end against the sample API, on local storage and on S3 (moto)."""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from etl.bronze.deadline import Deadline
from etl.bronze.ingest import IngestionSummary, ingest
from etl.bronze.layout import BronzeLayout, list_run_ids, read_manifest, read_watermark
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.bronze.source import SourceError
from etl.storage import LocalStore, open_store
from etl.timestamps import parse_rfc3339
from local.sample_api.generator import SampleSource
from local.sample_api.server import Fault, FaultPlan, SampleApiServer
from tests.fixed_api import FixedPagesApi
from tests.history_api import HistoryApi

STARTED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LAYOUT = BronzeLayout("orders")


def settings_for(url: str, root: str, **source: object) -> IngestionSettings:
    options: dict[str, object] = {"page_size": 100, "backoff_base_seconds": 0.0, "max_attempts": 2}
    options.update(source)
    source_settings = SourceSettings(base_url=url, **options)  # type: ignore[arg-type]
    return IngestionSettings(source=source_settings, bronze_root=root, dataset="orders")


def stored_lines(store: LocalStore, keys: list[str]) -> list[str]:
    lines: list[str] = []
    for key in keys:
        data = store.get(key)
        assert data is not None
        lines.extend(gzip.decompress(data).decode().split("\n")[:-1])
    return lines


def expected_watermark(texts: list[str]) -> datetime:
    instants = []
    for text in texts:
        value = json.loads(text)
        if isinstance(value, dict) and isinstance(value.get("updated_at"), str):
            instant = parse_rfc3339(value["updated_at"])
            if instant is not None:
                instants.append(instant)
    return max(instants)


def test_lands_every_record_as_received_with_a_manifest_and_a_watermark(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=250, batches=1)
    with SampleApiServer(source) as api:
        summary = ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)

    served = [text for _, _, text in source.records()]
    store = LocalStore(tmp_path)
    manifest = read_manifest(store, LAYOUT, "run-1")
    assert manifest is not None
    keys = [obj.key for obj in manifest.objects]
    assert keys == [f"orders/ingestion_date=2026-11-26/run_id=run-1/page-{n:06d}.jsonl.gz" for n in (1, 2, 3)]
    assert stored_lines(store, keys) == served
    assert [obj.records for obj in manifest.objects] == [100, 100, 50]
    assert (manifest.records, manifest.pages, manifest.updated_since) == (250, 3, "1970-01-01T00:00:00Z")
    assert read_watermark(store, LAYOUT) == expected_watermark(served)
    assert summary.as_dict() == {
        "run_id": "run-1",
        "dataset": "orders",
        "manifest": str(tmp_path.resolve() / "_manifests/orders/run-1.json"),
        "pages": 3,
        "records": 250,
        "objects": 3,
        "updated_since": "1970-01-01T00:00:00Z",
        "watermark": manifest.watermark,
        "has_more": False,
    }


def test_the_next_run_asks_only_for_what_changed_since_the_watermark(tmp_path: Path) -> None:
    first = SampleSource(seed=5, initial_orders=250, change_fraction=0.2, batches=1)
    with SampleApiServer(first) as api:
        ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    watermark = read_watermark(LocalStore(tmp_path), LAYOUT)

    second = SampleSource(seed=5, initial_orders=250, change_fraction=0.2, batches=2)
    with SampleApiServer(second) as api:
        summary = ingest(settings_for(api.url, str(tmp_path)), "run-2", STARTED)

    store = LocalStore(tmp_path)
    manifest = read_manifest(store, LAYOUT, "run-2")
    assert manifest is not None and watermark is not None
    assert parse_rfc3339(manifest.updated_since) == watermark
    new_texts = [text for _, _, text in second.records(first_batch=2)]
    # updated_since is inclusive: the record at the watermark itself is served again (at least once).
    assert stored_lines(store, [obj.key for obj in manifest.objects]) == [
        first.record_text(1, first.batch_size(1) - 1),
        *new_texts,
    ]
    assert summary.records == len(new_texts) + 1
    assert list_run_ids(store, LAYOUT) == ["run-1", "run-2"]


def test_a_failed_run_leaves_no_manifest_and_the_watermark_untouched(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=250, batches=1)
    with SampleApiServer(source) as api:
        ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    before = read_watermark(LocalStore(tmp_path), LAYOUT)

    bigger = SampleSource(seed=5, initial_orders=250, change_fraction=1.0, batches=2)
    # Page 1 is served, then the API fails for longer than the client retries.
    plan = FaultPlan.of([None, Fault.SERVER_ERROR, Fault.SERVER_ERROR])
    with SampleApiServer(bigger, faults=plan) as api, pytest.raises(SourceError):
        ingest(settings_for(api.url, str(tmp_path)), "run-2", STARTED)

    store = LocalStore(tmp_path)
    assert len(list(store.list("orders/ingestion_date=2026-11-26/run_id=run-2/"))) == 1  # page 1 only
    assert read_manifest(store, LAYOUT, "run-2") is None
    assert read_watermark(store, LAYOUT) == before
    assert list_run_ids(store, LAYOUT) == ["run-1"]

    # The next run starts from the same watermark, so nothing of the failed window is lost.
    with SampleApiServer(bigger) as api:
        summary = ingest(settings_for(api.url, str(tmp_path)), "run-3", STARTED)
    assert parse_rfc3339(summary.updated_since) == before
    assert summary.records == bigger.batch_size(2) + 1


def test_a_retried_run_overwrites_its_objects_instead_of_duplicating_them(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=250, batches=1)
    store = LocalStore(tmp_path)
    # The first attempt writes page 1, then fails on page 2.
    plan = FaultPlan.of([None, Fault.SERVER_ERROR, Fault.SERVER_ERROR])
    with SampleApiServer(source, faults=plan) as api, pytest.raises(SourceError):
        ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    first_page = store.get(next(iter(store.list("orders/"))))

    # Step Functions retries the task with the same input, so the same run id and start time.
    with SampleApiServer(source) as api:
        ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)

    manifest = read_manifest(store, LAYOUT, "run-1")
    assert manifest is not None
    assert list(store.list("orders/")) == [obj.key for obj in manifest.objects]  # nothing twice
    assert store.get(manifest.objects[0].key) == first_page  # page 1 rewritten with the same bytes
    assert stored_lines(store, [obj.key for obj in manifest.objects]) == [t for _, _, t in source.records()]


def test_a_finished_run_is_not_pulled_again(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=250, change_fraction=0.2, batches=1)
    with SampleApiServer(source) as api:
        first = ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    objects = {key: LocalStore(tmp_path).get(key) for key in LocalStore(tmp_path).list("")}

    # A redrive of the same execution, after the source moved on.
    with SampleApiServer(SampleSource(seed=5, initial_orders=250, change_fraction=0.2, batches=2)) as api:
        again = ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
        assert api.requests == []

    assert again == first
    assert {key: LocalStore(tmp_path).get(key) for key in LocalStore(tmp_path).list("")} == objects


def test_a_future_timestamp_does_not_move_the_watermark(tmp_path: Path) -> None:
    records = [
        '{"order_id": 1, "updated_at": "2026-11-26T07:00:00Z"}',
        '{"order_id": 2, "updated_at": "2999-01-01T00:00:00Z"}',
        '{"order_id": 3, "updated_at": "not a time"}',
        '"not an object"',
    ]
    with FixedPagesApi([records[:2], records[2:]]) as api:
        summary = ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    assert summary.watermark == "2026-11-26T07:00:00Z"
    assert summary.records == 4


def test_pretty_printed_pages_are_stored_one_record_per_line(tmp_path: Path) -> None:
    records = ['{"order_id": 1, "items": [{"sku": "A"}], "updated_at": "2026-01-01T00:00:00Z"}']
    with FixedPagesApi([records], indent=2) as api:
        ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    store = LocalStore(tmp_path)
    manifest = read_manifest(store, LAYOUT, "run-1")
    assert manifest is not None
    [line] = stored_lines(store, [obj.key for obj in manifest.objects])
    assert json.loads(line) == json.loads(records[0])


def test_empty_source_writes_a_manifest_without_objects(tmp_path: Path) -> None:
    with FixedPagesApi([[]]) as api:
        summary = ingest(settings_for(api.url, str(tmp_path)), "run-1", STARTED)
    assert (summary.records, summary.objects, summary.pages) == (0, 0, 1)
    assert summary.watermark == "1970-01-01T00:00:00Z"
    assert read_manifest(LocalStore(tmp_path), LAYOUT, "run-1") is not None


def test_rejects_a_run_id_that_cannot_be_part_of_a_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run id"):
        ingest(settings_for("http://127.0.0.1:9", str(tmp_path)), "../escape", STARTED)


@mock_aws
def test_lands_the_same_objects_in_s3() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="bronze", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    source = SampleSource(seed=5, initial_orders=120, batches=1)
    with SampleApiServer(source) as api:
        summary = ingest(settings_for(api.url, "s3://bronze/raw"), "run-1", STARTED)

    assert summary.manifest == "s3://bronze/raw/_manifests/orders/run-1.json"
    store = open_store("s3://bronze/raw", s3)
    manifest = read_manifest(store, LAYOUT, "run-1")
    assert manifest is not None
    lines = []
    for obj in manifest.objects:
        head = s3.head_object(Bucket="bronze", Key=f"raw/{obj.key}")
        assert head["ContentType"] == "application/gzip"
        data = store.get(obj.key)
        assert data is not None
        lines.extend(gzip.decompress(data).decode().split("\n")[:-1])
    assert lines == [text for _, _, text in source.records()]
    assert read_watermark(store, LAYOUT) == parse_rfc3339(summary.watermark)


class StoreThatDies:
    """A local store whose process dies (an exception) on the put after `pages` page objects."""

    def __init__(self, root: Path, pages: int) -> None:
        self.store = LocalStore(root)
        self.pages_left = pages

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if key.endswith(".jsonl.gz"):
            if self.pages_left == 0:
                raise KeyboardInterrupt("killed between pages")
            self.pages_left -= 1
        self.store.put(key, data, content_type)

    def get(self, key: str) -> bytes | None:
        return self.store.get(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.store.list(prefix)

    def uri(self, key: str) -> str:
        return self.store.uri(key)


def after_checks(checks: int) -> Deadline:
    """A deadline reached at the `checks`-th check (one check per page): a run of that many pages."""
    counter = itertools.count(1)
    return Deadline(lambda: checks - next(counter), margin_seconds=0)


def ingest_until_caught_up(
    url: str, root: Path, pages_per_run: int, page_size: int = 100
) -> list[IngestionSummary]:
    summaries: list[IngestionSummary] = []
    while not summaries or summaries[-1].has_more:
        run_id = f"exec-{len(summaries) + 1:03d}"
        settings = settings_for(url, str(root), page_size=page_size)
        summaries.append(ingest(settings, run_id, STARTED, deadline=after_checks(pages_per_run)))
        assert len(summaries) < 100, "ingestion does not converge"
    return summaries


def run_lines(root: Path, summaries: list[IngestionSummary]) -> list[list[str]]:
    store = LocalStore(root)
    lines = []
    for summary in summaries:
        manifest = read_manifest(store, LAYOUT, summary.run_id)
        assert manifest is not None
        lines.append(stored_lines(store, [obj.key for obj in manifest.objects]))
    return lines


def test_a_deadline_splits_a_backfill_into_runs_that_together_hold_every_record(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=1000, change_fraction=0.3, batches=3)
    with SampleApiServer(source) as api:
        summaries = ingest_until_caught_up(api.url, tmp_path, pages_per_run=3)

    served = [text for _, _, text in source.records()]
    assert [s.has_more for s in summaries] == [True] * (len(summaries) - 1) + [False]
    assert [s.pages for s in summaries[:-1]] == [3] * (len(summaries) - 1)
    assert len(summaries) == 6  # 1,600 records in pages of 100, each run but the first repeats one
    # Each run starts where the one before stopped: its first record is the last one before, again.
    lines = run_lines(tmp_path, summaries)
    for before, after in itertools.pairwise(lines):
        assert after[0] == before[-1]
    assert [text for run in lines for text in run[1:]] == served[1:]
    assert lines[0][0] == served[0]
    watermarks = [s.watermark for s in summaries]  # RFC 3339 in UTC, same format: sorts as time does
    assert watermarks == sorted(watermarks) and len(set(watermarks)) == len(watermarks)
    assert read_watermark(LocalStore(tmp_path), LAYOUT) == expected_watermark(served)


def at(instant: str, order_id: int) -> str:
    return json.dumps({"order_id": order_id, "updated_at": instant})


def test_a_run_among_records_of_its_starting_instant_goes_on_until_the_watermark_moves(
    tmp_path: Path,
) -> None:
    first, second = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"
    history = [at(first, n) for n in range(10)] + [at(second, n) for n in range(10, 15)]
    with HistoryApi(history) as api:
        summaries = ingest_until_caught_up(api.url, tmp_path, pages_per_run=1, page_size=3)

    # Run 1 stops after one page (the watermark moved from 1970 to `first`). Run 2 starts at `first`:
    # stopping after its first page would send run 3 to the same page, so it goes on until `second`.
    assert [(s.updated_since, s.pages, s.watermark, s.has_more) for s in summaries] == [
        ("1970-01-01T00:00:00Z", 1, "2026-11-01T00:00:00Z", True),
        ("2026-11-01T00:00:00Z", 4, "2026-11-02T00:00:00Z", True),
        ("2026-11-02T00:00:00Z", 2, "2026-11-02T00:00:00Z", False),
    ]
    delivered = {text for run in run_lines(tmp_path, summaries) for text in run}
    assert delivered == set(history)


def test_a_future_timestamp_never_lets_a_run_stop_or_move_the_watermark(tmp_path: Path) -> None:
    history = [at("2026-11-26T01:00:00Z", 1), at("2026-11-26T02:00:00Z", 2), at("2999-01-01T00:00:00Z", 3)]
    with HistoryApi(history) as api:
        summaries = ingest_until_caught_up(api.url, tmp_path, pages_per_run=1, page_size=1)

    assert [(s.pages, s.watermark, s.has_more) for s in summaries] == [
        (1, "2026-11-26T01:00:00Z", True),
        (2, "2026-11-26T02:00:00Z", True),
        (2, "2026-11-26T02:00:00Z", False),  # the future record came, and did not move the watermark
    ]
    assert read_watermark(LocalStore(tmp_path), LAYOUT) == parse_rfc3339("2026-11-26T02:00:00Z")


def test_a_run_killed_between_pages_loses_nothing_and_its_retry_writes_nothing_twice(tmp_path: Path) -> None:
    source = SampleSource(seed=5, initial_orders=600, batches=1)
    with SampleApiServer(source) as api:
        first = ingest(settings_for(api.url, str(tmp_path)), "exec-001", STARTED, deadline=after_checks(2))
        with pytest.raises(KeyboardInterrupt):
            ingest(
                settings_for(api.url, str(tmp_path)), "exec-002", STARTED, store=StoreThatDies(tmp_path, 2)
            )
        store = LocalStore(tmp_path)
        assert read_manifest(store, LAYOUT, "exec-002") is None
        assert read_watermark(store, LAYOUT) == parse_rfc3339(first.watermark)
        # The task is retried with the same input: the same run id, from the same watermark.
        retried = ingest(settings_for(api.url, str(tmp_path)), "exec-002", STARTED)

    assert (first.has_more, retried.has_more) == (True, False)
    lines = run_lines(tmp_path, [first, retried])
    served = [text for _, _, text in source.records()]
    assert lines[0] + lines[1][1:] == served
    manifests = [read_manifest(store, LAYOUT, run_id) for run_id in ("exec-001", "exec-002")]
    manifest_keys = {obj.key for manifest in manifests if manifest is not None for obj in manifest.objects}
    assert set(store.list("orders/")) == manifest_keys  # the killed attempt's pages were overwritten
