"""Silver read once per Gold run: a Silver table that two or more of the run's rebuilds read is scanned
once, kept for the run (in memory, spilling to local disk) and released after it.

Every Gold model's SQL scans the whole of the Silver tables it reads, merge-on-read deletes applied, and
the three bundled models all read `silver.orders`: without this, each rebuild scanned it again. Only the
columns the models' SQL names are kept (see `columns_named`), so the copy is a fraction of the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pyspark.sql import DataFrame

# `COUNT(*)` names no column; any other `*` (`SELECT *`, `o.*`) may read every column.
_COUNT_ALL = re.compile(r"\bcount\s*\(\s*\*\s*\)", re.IGNORECASE)
# A NATURAL JOIN joins on the columns both sides have, without naming them: dropping one would change
# the join, so such SQL keeps every column.
_NATURAL = re.compile(r"\bnatural\b", re.IGNORECASE)


def columns_named(sql_texts: Iterable[str], columns: Sequence[str]) -> tuple[str, ...]:
    """The columns (of `columns`, in their order) that the SQL texts may read: those named as a word in
    any of them (a superset: a name in a comment or of another table's column counts too), or all of
    them when a text has a `*` other than `COUNT(*)` or a NATURAL JOIN. A column read but not kept would
    make the SQL fail to resolve it, never give another result."""
    texts = list(sql_texts)
    if any("*" in _COUNT_ALL.sub("", text) or _NATURAL.search(text) for text in texts):
        return tuple(columns)
    words = {word.lower() for text in texts for word in re.findall(r"\w+", text)}
    return tuple(column for column in columns if column.lower() in words)


class SharedReads:
    """The Silver tables a run keeps: `share` one, `release` all of them when the run ends."""

    def __init__(self) -> None:
        self._kept: list[DataFrame] = []

    def share(self, rows: DataFrame, sql_texts: Sequence[str]) -> DataFrame:
        """`rows` cut to the columns the SQL texts name, kept from their first scan until `release`
        (nothing is read before a model needs it: a run that rebuilds nothing reads nothing)."""
        kept = rows.select(*columns_named(sql_texts, rows.columns)).persist()
        self._kept.append(kept)
        return kept

    def release(self) -> None:
        for rows in self._kept:
            rows.unpersist()
        self._kept.clear()

    @property
    def kept(self) -> int:
        """How many tables are kept now."""
        return len(self._kept)


def shared_datasets(reads: Iterable[Sequence[str]]) -> list[str]:
    """The datasets that more than one of the given models' reads name (each model counted once)."""
    counts: dict[str, int] = {}
    for datasets in reads:
        for name in set(datasets):
            counts[name] = counts.get(name, 0) + 1
    return sorted(name for name, count in counts.items() if count > 1)
