"""Ways out when Bronze is damaged: set a run with a damaged object aside, and move the watermark back so
that the next ingestion run pulls the missing window from the source again.

Both only write Bronze's small state objects (a set-aside marker, the watermark); no record is deleted.
The Silver job names the command to run when it finds a damaged object or a gap between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from etl.bronze.layout import (
    BronzeLayout,
    damage_of,
    list_set_aside,
    read_manifest,
    read_watermark,
    set_aside_run,
    write_watermark,
)
from etl.storage import ObjectStore
from etl.timestamps import format_rfc3339, require_rfc3339


class RepairRefused(ValueError):
    """The repair asked for would not help, or would lose records."""


@dataclass(frozen=True)
class Rewound:
    before: datetime | None  # the watermark before; None when there was none
    after: datetime


@dataclass(frozen=True)
class Repaired:
    run_id: str
    damaged: tuple[str, ...]  # one line per damaged object
    watermark: Rewound


def repair_run(store: ObjectStore, layout: BronzeLayout, run_id: str) -> Repaired:
    """Set aside run `run_id`, one of whose objects is damaged, and move the watermark back to where that
    run started, so that the next ingestion run pulls its window (and everything after it) again."""
    manifest = read_manifest(store, layout, run_id)
    if manifest is None:
        raise RepairRefused(f"run {run_id} has no manifest at {store.uri(layout.manifest_key(run_id))}")
    if run_id in list_set_aside(store, layout):
        raise RepairRefused(f"run {run_id} is already set aside: the next pipeline run ingests its window")
    damaged = tuple(
        f"{store.uri(obj.key)}: {damage}"
        for obj in manifest.objects
        if (damage := damage_of(store, obj)) is not None
    )
    if not damaged:
        raise RepairRefused(
            f"every object of run {run_id} is readable and complete: there is nothing to repair"
        )
    rewound = rewind_watermark(store, layout, manifest.updated_since, f"repair of {run_id}")
    # Set aside after the watermark moved back: if this fails half way, the run is still read (and still
    # reported), never skipped while its window is not pulled again.
    set_aside_run(store, layout, run_id, "; ".join(damaged))
    return Repaired(run_id, damaged, rewound)


def rewind_watermark(store: ObjectStore, layout: BronzeLayout, to: str, reason: str) -> Rewound:
    """Move the watermark back to `to` (RFC 3339); never forward, which would skip changes for good."""
    target = require_rfc3339(to, "the watermark to rewind to")
    current = read_watermark(store, layout)
    if current is not None and target > current:
        raise RepairRefused(
            f"the watermark is {format_rfc3339(current)}; moving it forward to {format_rfc3339(target)} "
            "would skip the changes in between: it only moves back"
        )
    if current is None or target < current:
        write_watermark(store, layout, target, reason)
    return Rewound(current, target if current is None else min(current, target))
