"""The Bronze layout: where raw objects, run manifests and the watermark live, and their formats.

    <dataset>/ingestion_date=YYYY-MM-DD/run_id=<run>/page-000001.jsonl.gz   records as received
    _manifests/<dataset>/<run>.json                                          what a finished run wrote
    _state/<dataset>/watermark.json                                          highest updated_at ingested
    _manifests/<dataset>/_set_aside/<run>.json                               a run set aside by a repair

A run's manifest is written after all its objects, and is what the Silver job reads: objects that no
manifest lists (left by a run that failed half way) are never read. A run set aside (one of its objects
is damaged) is never read either: its window is ingested again by a later run.

Each line of a page object is one record: its JSON text exactly as the source sent it (line breaks between
tokens turned into spaces). A record that cannot be kept as such a line, because it is not valid UTF-8,
not JSON, or nested deeper than etl.json_nesting.MAX_NESTING, is kept as `base64:` followed by the
standard base64 of the exact bytes received; no JSON text starts that way. Silver quarantines it.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
import zlib
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from etl.storage import ObjectStore
from etl.timestamps import format_rfc3339, require_rfc3339, utc_now

# An execution name (at most 80 characters) and the iteration suffix of a repeated ingestion ("-001").
_RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,84}")
RAW_BYTES_PREFIX = "base64:"
_LINE_END = re.compile(r"\r\n|\r|\n")
_RUN_ID_IN_PAGE_KEY = re.compile(r"/run_id=([^/]+)/page-[0-9]+\.jsonl\.gz$")

# A record stamped further in the future than this after its run started (clock skew, a bad record) does
# not move the watermark (a watermark in the future would skip every real change until that time), and
# Silver quarantines it (a version from the future would win over every real later update).
MAX_CLOCK_SKEW = timedelta(minutes=5)


def validate_run_id(run_id: str) -> str:
    """Run ids become parts of object keys: letters, digits, '.', '_' and '-', at most 84."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id must be 1-84 letters, digits, '.', '_' or '-', got {run_id!r}")
    return run_id


def split_lines(text: str) -> list[str]:
    """The lines of a Bronze object's text as Spark's text reader ends them: at \n, \r\n or \r, and the
    end of the object ends the last one. The Silver job reads Bronze this way (etl/silver/bronze_lines.py)."""
    # A plain split at \n is several times quicker than the regular expression: most objects hold no \r.
    lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
    if lines[-1] == "":  # the text ended with a line end (or is empty): no line after it
        lines.pop()
    return lines


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

    @property
    def page_prefix(self) -> str:
        return f"{self.dataset}/"

    def set_aside_key(self, run_id: str) -> str:
        # Under the manifests' prefix: whoever may read manifests (the Silver job) may read these too.
        return f"{self.manifest_prefix}_set_aside/{run_id}.json"


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
    """Ids of every run that finished (has a manifest) and was not set aside."""
    names = [key.removeprefix(layout.manifest_prefix) for key in store.list(layout.manifest_prefix)]
    set_aside = {
        name.removeprefix("_set_aside/").removesuffix(".json")
        for name in names
        if name.startswith("_set_aside/")
    }
    return [
        name.removesuffix(".json")
        for name in names
        if name.endswith(".json") and "/" not in name and name.removesuffix(".json") not in set_aside
    ]


def list_set_aside(store: ObjectStore, layout: BronzeLayout) -> list[str]:
    """Ids of the runs set aside by `set_aside_run`."""
    prefix = layout.set_aside_key("")[: -len(".json")]
    return [key.removeprefix(prefix).removesuffix(".json") for key in store.list(prefix)]


def set_aside_run(store: ObjectStore, layout: BronzeLayout, run_id: str, reason: str) -> None:
    """Make the Silver job (and a rebuild) skip a finished run; its manifest and objects stay as evidence."""
    body = {"run_id": run_id, "reason": reason, "set_aside_at": format_rfc3339(utc_now())}
    store.put(layout.set_aside_key(run_id), json.dumps(body).encode(), "application/json")


def list_page_run_ids(store: ObjectStore, layout: BronzeLayout) -> set[str]:
    """Ids of every run that wrote at least one page, finished or not (one listing of all pages)."""
    return {
        match.group(1) for key in store.list(layout.page_prefix) if (match := _RUN_ID_IN_PAGE_KEY.search(key))
    }


def damage_of(store: ObjectStore, obj: BronzeObject) -> str | None:
    """What is wrong with a Bronze object (missing, not complete gzip, not UTF-8, other line count), or
    None."""
    data = store.get(obj.key)
    if data is None:
        return "it is missing"
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        return f"it is not a complete gzip object ({e})"
    try:
        lines = len(split_lines(text.decode("utf-8")))  # the lines as the Silver job reads them
    except UnicodeDecodeError as e:
        return f"it is not UTF-8 text ({e})"
    if lines != obj.records:
        return f"its manifest lists {obj.records} records, Bronze holds {lines}"
    return None


def new_run_id(started_at: datetime) -> str:
    """A fresh run id that sorts by start time, e.g. 20261126T135100Z-1f2e3d4c."""
    return f"{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
