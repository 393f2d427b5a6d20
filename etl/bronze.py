"""The Bronze layout: where raw objects, run manifests and the watermark live, and their formats.

    <dataset>/ingestion_date=YYYY-MM-DD/run_id=<run>/page-000001.jsonl.gz   records as received
    _manifests/<dataset>/<run>.json                                          what a finished run wrote
    _state/<dataset>/watermark.json                                          highest updated_at ingested

A run's manifest is written after all its objects, and is what the Silver job reads: objects that no
manifest lists (left by a run that failed half way) are never read.

Each line of a page object is one record: its JSON text exactly as the source sent it (line breaks between
tokens turned into spaces). A record that cannot be kept as such a line, because it is not valid UTF-8,
not JSON, or nested deeper than etl.json_nesting.MAX_NESTING, is kept as `base64:` followed by the
standard base64 of the exact bytes received; no JSON text starts that way. Silver quarantines it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from etl.storage import ObjectStore
from etl.timestamps import format_rfc3339, require_rfc3339

# An execution name (at most 80 characters) and the iteration suffix of a repeated ingestion ("-001").
_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,84}")
RAW_BYTES_PREFIX = "base64:"


def validate_run_id(run_id: str) -> str:
    """Run ids become parts of object keys: letters, digits, '.', '_' and '-', at most 84."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id must be 1-84 letters, digits, '.', '_' or '-', got {run_id!r}")
    return run_id


def raw_bytes_line(data: bytes) -> str:
    """The Bronze line of a record kept as raw bytes (see the module docstring)."""
    return RAW_BYTES_PREFIX + base64.b64encode(data).decode("ascii")


def raw_bytes_of(line: str) -> bytes | None:
    """The bytes of a record kept as raw bytes; None for a line that holds a record's JSON text."""
    if not line.startswith(RAW_BYTES_PREFIX):
        return None
    return base64.b64decode(line[len(RAW_BYTES_PREFIX) :], validate=True)


@dataclass(frozen=True)
class BronzeObject:
    key: str
    records: int
    bytes: int


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    dataset: str
    started_at: str  # RFC 3339, UTC
    finished_at: str
    updated_since: str  # the watermark the run started from
    watermark: str  # the watermark after the run
    pages: int
    records: int
    objects: tuple[BronzeObject, ...]
    # The run stopped at its deadline before the source's last page: the next run goes on from the watermark.
    has_more: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RunManifest:
        fields: dict[str, Any] = json.loads(data)
        objects = tuple(BronzeObject(**item) for item in fields.pop("objects"))
        return cls(objects=objects, **fields)


@dataclass(frozen=True)
class BronzeLayout:
    dataset: str

    def page_key(self, run_id: str, started_at: datetime, page: int) -> str:
        return (
            f"{self.dataset}/ingestion_date={started_at.date().isoformat()}/run_id={run_id}/"
            f"page-{page:06d}.jsonl.gz"
        )

    @property
    def manifest_prefix(self) -> str:
        return f"_manifests/{self.dataset}/"

    def manifest_key(self, run_id: str) -> str:
        return f"{self.manifest_prefix}{run_id}.json"

    @property
    def watermark_key(self) -> str:
        return f"_state/{self.dataset}/watermark.json"


def read_watermark(store: ObjectStore, layout: BronzeLayout) -> datetime | None:
    data = store.get(layout.watermark_key)
    if data is None:
        return None
    return require_rfc3339(
        json.loads(data)["watermark"], f"the watermark in {store.uri(layout.watermark_key)}"
    )


def write_watermark(store: ObjectStore, layout: BronzeLayout, watermark: datetime, run_id: str) -> None:
    body = {"watermark": format_rfc3339(watermark), "run_id": run_id}
    store.put(layout.watermark_key, json.dumps(body).encode(), "application/json")


def read_manifest(store: ObjectStore, layout: BronzeLayout, run_id: str) -> RunManifest | None:
    data = store.get(layout.manifest_key(run_id))
    return None if data is None else RunManifest.from_json(data)


def list_run_ids(store: ObjectStore, layout: BronzeLayout) -> list[str]:
    """Ids of every run that finished (has a manifest)."""
    return [
        key.removeprefix(layout.manifest_prefix).removesuffix(".json")
        for key in store.list(layout.manifest_prefix)
        if key.endswith(".json")
    ]


def new_run_id(started_at: datetime) -> str:
    """A fresh run id that sorts by start time, e.g. 20261126T135100Z-1f2e3d4c."""
    return f"{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
