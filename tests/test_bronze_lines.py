"""The Silver job's read of Bronze in Python (etl/silver/bronze_lines.py), without Spark but for the tasks.

What Spark's text reader makes of the same objects is compared in tests/test_silver_job.py.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from etl.bronze.layout import split_lines
from etl.silver import bronze_lines
from etl.silver.bronze_lines import (
    ArrowFunction,
    ObjectToRead,
    UnreadableBronzeObject,
    bronze_slices,
    object_text,
)
from etl.storage import LocalStore

STARTED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a\nb\n", ["a", "b"]),
        ("a\nb", ["a", "b"]),  # the end of the object ends the last line
        ("a\n\nb\n", ["a", "", "b"]),
        ("a\r\nb\rc\r\rd\n", ["a", "b", "c", "", "d"]),
        ("a\r", ["a"]),
        ("", []),
        ("\n", [""]),
        ("a\x0bb\x0cc\u2028d\n", ["a\x0bb\x0cc\u2028d"]),  # only \n and \r end lines, not str.splitlines'
    ],
)
def test_lines_end_at_line_feeds_carriage_returns_and_the_end_of_the_object(
    text: str, lines: list[str]
) -> None:
    assert split_lines(text) == lines


def test_an_object_that_is_missing_or_not_gzipped_utf8_text_is_named() -> None:
    with pytest.raises(UnreadableBronzeObject, match="Bronze object k is missing"):
        object_text("k", None)
    with pytest.raises(UnreadableBronzeObject, match="Bronze object k cannot be read"):
        object_text("k", b"plain text")
    with pytest.raises(UnreadableBronzeObject, match="Bronze object k cannot be read"):
        object_text("k", gzip.compress(b"\xff\n"))
    assert object_text("k", gzip.compress("é\n".encode())) == "é\n"


def _land(tmp_path: Path, objects: dict[str, list[str]]) -> list[ObjectToRead]:
    store = LocalStore(tmp_path)
    for key, lines in objects.items():
        store.put(key, gzip.compress("".join(f"{line}\n" for line in lines).encode()))
    return [ObjectToRead(key, f"run-{key[-1]}", STARTED, len(lines)) for key, lines in objects.items()]


def _read_all(parts: range, read: ArrowFunction) -> list[dict[str, object]]:
    batch = pa.RecordBatch.from_pydict({"part": pa.array(parts, pa.int64())})
    rows: list[dict[str, object]] = pa.Table.from_batches(list(read([batch]))).to_pylist()
    return rows


def test_every_line_of_every_object_is_read_once_numbered_with_its_object_and_run(tmp_path: Path) -> None:
    objects = _land(tmp_path, {"o/page-1": ["a", "b", "c"], "o/page-2": ["d"], "o/page-3": []})

    slices = bronze_slices(str(tmp_path), objects, cores=2)

    assert slices.slices == 1  # objects enough for the cores
    rows = _read_all(range(slices.parts), slices.read_lines())
    assert [(r["raw_record"], r["source_object"], r["line_number"], r["ingestion_run_id"]) for r in rows] == [
        ("a", "o/page-1", 1, "run-1"),
        ("b", "o/page-1", 2, "run-1"),
        ("c", "o/page-1", 3, "run-1"),
        ("d", "o/page-2", 1, "run-2"),
    ]
    assert {r["ingested_at"] for r in rows} == {STARTED}


def test_fewer_objects_than_cores_are_cut_into_slices_that_hold_each_line_once(tmp_path: Path) -> None:
    lines = [f"line {n}" for n in range(1, 42)]
    objects = _land(tmp_path, {"o/page-1": lines, "o/page-2": ["x", "y"]})

    slices = bronze_slices(str(tmp_path), objects, cores=4)

    assert slices.slices == 2 and slices.parts == 4
    read = slices.read_lines()
    # Each part read on its own (as the tasks do), in a scrambled order: together, every line once.
    parts = [3, 1, 0, 2]
    rows = [row for part in parts for row in _read_all(range(part, part + 1), read)]
    assert sorted((r["source_object"], r["line_number"], r["raw_record"]) for r in rows) == sorted(
        [("o/page-1", n, line) for n, line in enumerate(lines, start=1)]
        + [("o/page-2", 1, "x"), ("o/page-2", 2, "y")]
    )


def test_a_missing_object_fails_the_read_naming_it(tmp_path: Path) -> None:
    objects = [*_land(tmp_path, {"o/page-1": ["a"]}), ObjectToRead("o/page-2", "run-2", STARTED, 1)]

    slices = bronze_slices(str(tmp_path), objects, cores=1)

    with pytest.raises(UnreadableBronzeObject, match="o/page-2 is missing"):
        _read_all(range(slices.parts), slices.read_lines())


@pytest.mark.spark
def test_a_task_per_core_unless_the_batch_is_large(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _land(tmp_path, {f"o/page-{n}": [f"line {n}.{i}" for i in range(3)] for n in range(1, 9)})
    cores = spark.sparkContext.defaultParallelism

    slices = bronze_slices(str(tmp_path), objects, cores)

    assert slices.frame(spark).rdd.getNumPartitions() == min(8, cores)
    monkeypatch.setattr(bronze_lines, "RECORDS_PER_TASK", 6)  # 24 records: 4 tasks
    assert slices.frame(spark).rdd.getNumPartitions() == min(8, max(cores, 4))
    assert sorted(row.part for row in slices.frame(spark).collect()) == list(range(8))
