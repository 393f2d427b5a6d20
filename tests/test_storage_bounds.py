"""Storage stays bounded: after many runs the warehouse holds only the files the retention keeps.

Thirty runs of the Silver and Gold jobs on small batches, with a retention that keeps the last three
snapshots (as a week of daily runs does with the default seven days): every table then holds at most
`METADATA_VERSIONS_KEPT` old metadata files, one manifest list per kept snapshot, and no file on disk
that its metadata does not reference.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl import registry
from etl.bronze.ingest import ingest
from etl.bronze.settings import IngestionSettings, SourceSettings
from etl.gold import job as gold
from etl.registry import all_tables
from etl.silver import job as silver
from etl.spark.jobs import ensure_tables
from etl.tables import METADATA_VERSIONS_KEPT, Layer
from tests.fixed_api import FixedPagesApi

pytestmark = pytest.mark.spark

RUNS = 30
RETAIN_LAST = 3
MAINTENANCE = ["--snapshot-retention-days", "0", "--retain-last-snapshots", str(RETAIN_LAST)]


def batch(run: int) -> list[str]:
    """A new order, an update of the first one and an invalid record of its own, per run: a batch without
    an invalid record makes no quarantine commit, and the quarantine must see as many commits as the
    other tables for its metadata bound to be tested."""
    updated = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=run)).isoformat()
    records = [
        json.dumps(
            {
                "order_id": order_id,
                "customer_id": f"C{order_id % 3}",
                "status": "paid",
                "amount": "10.00",
                "currency": "EUR",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": updated,
            }
        )
        for order_id in (1, 100 + run)
    ]
    return [*records, f'{{"order_id": "x{run}"}}']


def files(directory: Path) -> set[str]:
    """Files under `directory`, without the checksum files Hadoop's local file system writes beside them."""
    return {
        str(path.resolve())
        for path in directory.rglob("*")
        if path.is_file() and not path.name.endswith(".crc")
    }


def referenced(spark: SparkSession, identifier: str) -> tuple[set[str], set[str]]:
    """(metadata files, data and delete files) the table's current metadata references."""

    def paths(query: str) -> set[str]:
        return {row[0].removeprefix("file:") for row in spark.sql(query).collect()}

    metadata = paths(f"SELECT file FROM {identifier}.metadata_log_entries")
    metadata |= paths(f"SELECT manifest_list FROM {identifier}.snapshots")
    metadata |= paths(f"SELECT path FROM {identifier}.all_manifests")
    content = paths(f"SELECT file_path FROM {identifier}.all_files")
    return metadata, content


def test_thirty_runs_leave_no_more_files_than_the_retention_keeps(
    spark: SparkSession, tmp_path: Path
) -> None:
    bronze = tmp_path / "bronze"
    suffix = uuid.uuid4().hex[:8]
    databases = {Layer.SILVER: f"silver_{suffix}", Layer.GOLD: f"gold_{suffix}"}
    # Orders alone are ingested here; Gold also reads customers, which stay empty.
    ensure_tables(spark, databases[Layer.SILVER], registry.dataset("customers").tables)
    for run in range(1, RUNS + 1):
        with FixedPagesApi([batch(run)]) as api:
            ingest(
                IngestionSettings(SourceSettings(api.url), str(bronze), "orders"),
                f"run-{run:02d}",
                datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=run),
            )
        silver.run(
            spark,
            silver.parse_args(
                [
                    *("--bronze-root", str(bronze), "--silver-database", databases[Layer.SILVER]),
                    *("--dataset", "orders", *MAINTENANCE),
                ]
            ),
        )
        gold.run(
            spark,
            gold.parse_args(
                [
                    "--silver-database",
                    databases[Layer.SILVER],
                    "--gold-database",
                    databases[Layer.GOLD],
                    *MAINTENANCE,
                ]
            ),
        )

    ledger = spark.table(f"{databases[Layer.SILVER]}.ingestion_runs").count()
    assert ledger == RUNS
    untouched = {table.name for table in registry.dataset("customers").tables}
    for table in (t for t in all_tables() if t.name not in untouched):
        identifier = f"{databases[table.layer]}.{table.name}"
        location = Path(
            spark.sql(f"DESCRIBE TABLE EXTENDED {identifier}")
            .where("col_name = 'Location'")
            .first()[1]  # type: ignore[index]
            .removeprefix("file:")
        )
        on_disk = files(location / "metadata") - {str(location / "metadata" / "version-hint.text")}
        metadata, content = referenced(spark, identifier)
        snapshots = spark.sql(f"SELECT * FROM {identifier}.snapshots").count()
        metadata_json = {path for path in on_disk if path.endswith(".metadata.json")}

        # Far more commits than files kept (the Hadoop catalog numbers its metadata files v1, v2, ...).
        commits = max(int(Path(path).name.split(".")[0].removeprefix("v")) for path in metadata_json)
        assert commits > 2 * (METADATA_VERSIONS_KEPT + 1), identifier
        assert snapshots <= RETAIN_LAST, identifier
        assert len(metadata_json) <= METADATA_VERSIONS_KEPT + 1, identifier
        assert len({path for path in on_disk if Path(path).name.startswith("snap-")}) == snapshots, identifier
        # Nothing on disk that the table does not reference: no file is left behind for good.
        assert on_disk <= metadata, identifier
        assert files(location / "data") == content, identifier
