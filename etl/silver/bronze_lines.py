"""The lines of the Bronze objects to merge, read where they are validated: in the executors' Python.

Read by Spark's text reader, every line would cross from the JVM to the Python validator as Arrow: at a
million orders that hand-off cost 1.7 s of an 8 to 9 s read, validate and checkpoint step on 2 cores, more
than reading and splitting the objects did (1.2 s; docs/benchmarks.md, "Bronze read in Python"). Here the
JVM hands the Python workers only numbers: each stands for one slice of one object, and the worker reads
the object (`ObjectStore.get`, the next one fetched while the current one is validated), unzips it, splits
it into lines and hands them to validation in the same process. The records cross into the JVM once,
typed.

Lines end as Spark's text reader ends them (`split_lines`, etl/bronze/layout.py: at \\n, \\r\\n or
\\r, and the end of the object ends the last one; a test compares the two). Objects the manifests do not
list (a page left by an earlier attempt of a run) are never read.

An object is read whole by one worker, as Spark's reader would; a batch of fewer objects than cores (a
small run) has each object cut into slices of lines, so that validation keeps every core busy.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from etl.bronze.layout import split_lines
from etl.bronze.prefetch import Prefetched
from etl.storage import ObjectStore, open_store

# What the Arrow functions of validation take and give (pyspark's mapInArrow).
ArrowFunction = Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]

# etl/silver/records.py's RAW_SCHEMA as Arrow: mapInArrow refuses batches that do not match it.
RAW_ARROW_SCHEMA = pa.schema(
    [
        ("raw_record", pa.string()),
        ("source_object", pa.string()),
        ("line_number", pa.int32()),
        ("ingestion_run_id", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


class UnreadableBronzeObject(RuntimeError):
    """A Bronze object the manifests list is missing, or is not gzip-compressed UTF-8 text."""


# At most about this many records per task (about 5 s of validation): a large batch gets more tasks than
# the cores Spark reports when the job starts, which in AWS may be before every executor has joined.
RECORDS_PER_TASK = 500_000


@dataclass(frozen=True)
class ObjectToRead:
    key: str  # relative to the Bronze root, as the manifest lists it
    run_id: str
    ingested_at: datetime  # the run's start
    records: int  # as the manifest lists them


def object_text(key: str, data: bytes | None) -> str:
    """An object's bytes as text; UnreadableBronzeObject when it is missing or not gzip'd UTF-8."""
    if data is None:
        raise UnreadableBronzeObject(f"Bronze object {key} is missing")
    try:
        return gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, ValueError) as e:  # gzip and zlib errors, UnicodeDecodeError
        raise UnreadableBronzeObject(f"Bronze object {key} cannot be read: {e}") from e


@dataclass(frozen=True)
class BronzeSlices:
    """The objects to read, each cut into `slices` slices of lines: slice s of object o is part
    o * slices + s."""

    bronze_root: str
    objects: tuple[ObjectToRead, ...]
    slices: int

    @property
    def parts(self) -> int:
        return len(self.objects) * self.slices

    def frame(self, spark: SparkSession) -> DataFrame:
        """The part numbers in order, in one partition per core: what the executors are handed to read.

        One task per core, not more: each Python task costs about 0.07 to 0.1 s of its own, so four per
        core took twice as long to validate a 1% change of 1M orders (10,000 records) and longer for the
        full load too (docs/benchmarks.md, "Bronze read in Python"). Unless the batch is large: then
        one task per RECORDS_PER_TASK records."""
        records = sum(obj.records for obj in self.objects)
        tasks = max(spark.sparkContext.defaultParallelism, -(-records // RECORDS_PER_TASK))
        partitions = max(1, min(self.parts, tasks))
        return spark.range(0, self.parts, 1, partitions).withColumnRenamed("id", "part")

    def read_lines(self) -> ArrowFunction:
        """The Arrow function that turns batches of part numbers into batches of raw lines."""
        return self._read

    def _read(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        store = open_store(self.bronze_root)
        # The task's part numbers, all taken here: Spark's input stream is read on this thread only.
        parts = [part for batch in batches for part in batch.column("part").to_pylist()]
        # The object of the next part is fetched on a thread while this one is validated (the caller of
        # this iterator); a part of the same object as the last one reads nothing.
        fetched = _objects_of_parts(iter(parts), self.slices, lambda at: self._fetch(store, at))
        with Prefetched(fetched, thread_name="bronze-prefetch") as ahead:
            for part, text in ahead:
                yield self._slice(part, text)

    def _fetch(self, store: ObjectStore, at: int) -> str:
        key = self.objects[at].key
        return object_text(key, store.get(key))

    def _slice(self, part: int, text: str) -> pa.RecordBatch:
        obj = self.objects[part // self.slices]
        lines = split_lines(text)
        at = part % self.slices
        start, end = len(lines) * at // self.slices, len(lines) * (at + 1) // self.slices
        count = end - start
        return pa.RecordBatch.from_arrays(
            [
                pa.array(lines[start:end], pa.string()),
                pa.array([obj.key] * count, pa.string()),
                pa.array(range(start + 1, end + 1), pa.int32()),
                pa.array([obj.run_id] * count, pa.string()),
                pa.array([obj.ingested_at] * count, RAW_ARROW_SCHEMA.field("ingested_at").type),
            ],
            schema=RAW_ARROW_SCHEMA,
        )


def _objects_of_parts(
    parts: Iterator[int], slices: int, fetch: Callable[[int], str]
) -> Iterator[tuple[int, str]]:
    """(part, its object's text) for each part, each object fetched once for its consecutive parts."""
    last: tuple[int, str] | None = None
    for part in parts:
        at = part // slices
        if last is None or last[0] != at:
            last = (at, fetch(at))
        yield part, last[1]


def bronze_slices(bronze_root: str, objects: Sequence[ObjectToRead], cores: int) -> BronzeSlices:
    """The objects cut into slices enough for `cores` cores (one slice each when there are objects
    enough)."""
    slices = 1 if len(objects) >= cores else -(-cores // max(1, len(objects)))
    return BronzeSlices(bronze_root, tuple(objects), slices)
