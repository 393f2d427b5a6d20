"""Runs that only re-deliver merged records: recognised on the driver, so that a run with nothing new
costs no Spark work beyond its ledger row.

The source is asked for changes from the watermark on, inclusive (a record stamped with the watermark's
instant may arrive after the run that reached it), so a run over a source with nothing new still receives
the records at the watermark again. Such a run changes nothing in Silver when

- it did not move the watermark, and starts where the newest merged run ended;
- every line it holds is, byte for byte, a line of that merged run's last Bronze objects: the MERGE keeps
  the stored version on a tie, and the quarantine keeps a (record, reason) once;
- each valid record's version is at or before the watermark and was not in the future for that merged
  run either (the future-version rule depends on the run's start: etl/silver/records.py).

Anything else, or anything unreadable, goes through the Silver job's normal path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from etl.bronze.layout import MAX_CLOCK_SKEW, BronzeObject, RunManifest, split_lines
from etl.dataset import Dataset
from etl.silver.bronze_lines import UnreadableBronzeObject, object_text
from etl.silver.records import check_batches
from etl.storage import ObjectStore
from etl.timestamps import require_rfc3339

# Beyond this many records a run is not checked on the driver: it is merged the normal way.
MAX_RECORDS = 1000


@dataclass(frozen=True)
class Redelivery:
    """What the Silver job would have made of re-delivered runs, worked out on the driver."""

    lines: dict[str, list[str]]  # run id -> its lines, in order
    accepted: dict[str, int]  # run id -> valid records
    # run id -> {field the dataset does not know: records carrying it}, as validation names them
    unknown_fields: dict[str, dict[str, int]] = field(default_factory=dict)


def find_redelivery(
    store: ObjectStore,
    pending: Sequence[RunManifest],
    newest_merged: RunManifest | None,
    dataset: Dataset,
) -> Redelivery | None:
    """The pending runs as a Redelivery when each of them only re-delivers records of `newest_merged`."""
    if all(m.records == 0 for m in pending):
        return Redelivery({m.run_id: [] for m in pending}, {m.run_id: 0 for m in pending})
    if newest_merged is None or sum(m.records for m in pending) > MAX_RECORDS:
        return None
    if any(m.updated_since != newest_merged.watermark or m.watermark != m.updated_since for m in pending):
        return None
    runs = {m.run_id: _lines(store, m, m.objects) for m in pending}
    merged_tail = _lines(store, newest_merged, newest_merged.objects[-max(len(m.objects) for m in pending) :])
    if merged_tail is None or any(lines is None for lines in runs.values()):
        return None
    known = set(merged_tail)
    lines = {run_id: found for run_id, found in runs.items() if found is not None}
    if not all(line in known for found in lines.values() for line in found):
        return None
    watermark = _instant(newest_merged.watermark)
    future_for_merged = _instant(newest_merged.started_at) + MAX_CLOCK_SKEW
    accepted: dict[str, int] = {}
    unknown_fields: dict[str, dict[str, int]] = {}
    for run_id, found in lines.items():
        checked = _checked_rows(found, dataset)
        valid = [row for row in checked if row["reason"] is None]
        for row in valid:
            version = row[dataset.version]
            if not isinstance(version, datetime) or version > watermark or version > future_for_merged:
                return None
        accepted[run_id] = len(valid)
        carried = Counter(name for row in checked for name in row["unknown_fields"] or ())
        if carried:
            unknown_fields[run_id] = dict(carried)
    return Redelivery(lines, accepted, unknown_fields)


def _checked_rows(lines: list[str], dataset: Dataset) -> list[dict[str, Any]]:
    """The lines as validation leaves them (typed values, reason, unknown fields), by the same function
    the executors run."""
    if not lines:
        return []
    batch = pa.RecordBatch.from_arrays([pa.array(lines, pa.string())], names=["raw_record"])
    rows: list[dict[str, Any]] = pa.Table.from_batches(list(check_batches(dataset)([batch]))).to_pylist()
    return rows


def _lines(store: ObjectStore, manifest: RunManifest, objects: Sequence[BronzeObject]) -> list[str] | None:
    """The lines of the objects as the Silver job reads them, or None if one is not as listed."""
    found: list[str] = []
    for obj in manifest.objects:
        if obj not in objects:
            continue
        try:
            lines = split_lines(object_text(obj.key, store.get(obj.key)))
        except UnreadableBronzeObject:
            return None
        if len(lines) != obj.records:
            return None
        found += lines
    return found


def _instant(text: str) -> datetime:
    return require_rfc3339(text, "a run manifest's watermark")
