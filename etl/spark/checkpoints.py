"""Reliable checkpoints for a Spark job: a directory per run under durable storage, deleted after the run.

A local checkpoint keeps its blocks on the executors, so losing one (which AWS Glue FLEX does when it
reclaims capacity) fails the job: the checkpoint cut the lineage that would have recomputed them. A
reliable checkpoint writes the rows to S3 (locally, a directory), where any executor can read them back.
A small batch is cached instead (`kept_once`): a lost block of a cache is recomputed from its lineage,
which for a small batch costs less than writing the rows out and reading them back on every run.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pyspark import StorageLevel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


@contextmanager
def kept_once(
    spark: SparkSession, rows: DataFrame, root: str | None, name: str, checkpoint: bool
) -> Iterator[DataFrame]:
    """`rows` computed once for the block's several reads: checkpointed under `<root>/<name>` (computed
    now; the plan is cut), or else cached (computed by the first read; the plan is kept, so that a block an
    executor takes away with it is computed again). Deleted or uncached when the block ends.

    `name` must be the job's own: jobs running side by side under one root (the Silver jobs of the
    datasets of one pipeline run, in AWS) each delete their directory when they end."""
    if checkpoint:
        with checkpoint_directory(spark, root, name):
            yield rows.checkpoint(eager=True)
        return
    cached = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield cached
    finally:
        cached.unpersist()


@contextmanager
def checkpoint_directory(spark: SparkSession, root: str | None, name: str) -> Iterator[str]:
    """Make `<root>/<name>` the session's checkpoint directory for the block, then delete it.

    Without a root, a temporary local directory serves, which only a local Spark can read back. A
    directory left by a run that died is deleted by the next attempt of the same run, and in AWS by the
    bucket's lifecycle rule for the checkpoint prefix.
    """
    if root is None:
        if not (spark.sparkContext.master or "").startswith("local"):
            raise ValueError("this Spark is a cluster: pass --checkpoint-root s3://<bucket>/<prefix>")
        directory = tempfile.mkdtemp(prefix="lakehouse-checkpoint-")
    else:
        directory = f"{root.rstrip('/')}/{name}"
    spark.sparkContext.setCheckpointDir(directory)
    try:
        yield directory
    finally:
        delete_directory(spark, directory)


def delete_directory(spark: SparkSession, directory: str) -> None:
    """Delete `directory` and everything under it, through Hadoop's file system (S3 in Glue, local here).

    A failure is logged, not raised: it must not hide the job's own error, and what is left behind is
    deleted by the next attempt or by the lifecycle rule.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        path = jvm.org.apache.hadoop.fs.Path(directory)
        path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)
    except Exception:
        logger.warning("could not delete the checkpoint directory %s", directory, exc_info=True)
