"""A failed audit with the `lakehouse` command, end to end: the one line it prints, the commands it suggests
(which measure as the run did), and dropping the branch it kept."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from pyiceberg.table import StaticTable

from etl import registry
from tests.fixed_api import FixedPagesApi
from tests.test_end_to_end import lakehouse

pytestmark = pytest.mark.spark


def order(order_id: int, amount: float) -> str:
    return json.dumps(
        {
            "order_id": order_id,
            "customer_id": "c1",
            "status": "paid",
            "amount": amount,
            "currency": "EUR",
            "created_at": "2026-05-01T00:00:00Z",
            "updated_at": "2026-05-02T00:00:00Z",
        }
    )


def branches(data_dir: Path) -> dict[str, set[str]]:
    """The branches of every Silver and Gold table that exists, read with pyiceberg (not Spark)."""
    names = [
        *(f"silver/{table.name}" for table in registry.silver_tables()),
        *(f"gold/{table.name}" for table in registry.gold_tables()),
    ]
    found = {}
    for name in names:
        metadata = data_dir / "warehouse" / name / "metadata"
        if metadata.is_dir():
            version = (metadata / "version-hint.text").read_text().strip()
            table = StaticTable.from_metadata(str(metadata / f"v{version}.metadata.json"))
            found[name.replace("/", ".")] = set(table.metadata.refs)
    return found


def run_on(
    api: FixedPagesApi, data_dir: Path, max_quarantine_percent: str, **environment: str
) -> CompletedProcess[str]:
    """`lakehouse run` against the API, with the quarantine audit's threshold given."""
    return lakehouse(
        "run",
        *("--data-dir", str(data_dir), "--source-url", api.url),
        *("--audit-max-quarantine-percent", max_quarantine_percent),
        **environment,
    )


def test_a_failed_audit_says_what_publishing_anyway_also_does_and_its_suggestions_measure_as_it_did(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    one_in_eight = [*(order(i, 10.0) for i in range(1, 8)), order(8, -1.0)]  # 12.5% quarantined
    archives = tmp_path / "class-archives"
    with FixedPagesApi([one_in_eight]) as api:
        failed = run_on(
            api, data_dir, max_quarantine_percent="12.4", LAKEHOUSE_SPARK_CLASS_ARCHIVES=str(archives)
        )

    assert failed.returncode == 1
    # Only a run that finished keeps the classes its JVM loaded; this one leaves the save to the next run
    # (its JVM may still write them as it exits, but they are not kept).
    assert "Saving the classes" not in failed.stdout
    assert {path.name for path in archives.glob("*/*")} - {"classes.jsa.partial"} == {"base.jsa"}
    assert "--verbose" not in failed.stderr  # the user's situation, not a fault: no trace to ask for
    # What the run did before its branch was held back is still summed up: 8 read, 7 accepted, 1 quarantined.
    (orders_quarantined,) = [row for row in failed.stdout.splitlines() if row.startswith("quarantined ")]
    assert orders_quarantined.split()[-1] == "1", failed.stdout
    assert any(re.fullmatch(r"accepted +\d+ +7", row) for row in failed.stdout.splitlines()), failed.stdout
    (line,) = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    found = re.match(r"error: audit failed on branch (\S+): ", line)
    assert found is not None
    branch = found.group(1)
    assert (
        "quarantine_rate on silver.orders FAILED: 12.50% (1 of 8 records this run newly quarantined), "
        "threshold <= 12.4%. "
    ) in line
    options = f"--data-dir {data_dir} --source-url {api.url} --audit-max-quarantine-percent 12.4"
    assert line.endswith(
        f"or publish anyway with `lakehouse run --publish-anyway {options}` (a new run: it also ingests what "
        "the source has new since this one, and publishes it with the rest)"
    )

    inspect = re.search(r"inspect it with `([^`]+)`", line)
    assert inspect is not None
    assert inspect.group(1) == (
        f"lakehouse audits --branch {branch} --data-dir {data_dir} --audit-max-quarantine-percent 12.4"
    )
    inspected = lakehouse(*shlex.split(inspect.group(1))[1:])
    assert inspected.returncode == 1, inspected.stderr
    (rate,) = [
        row for row in inspected.stdout.splitlines() if re.match(r"quarantine_rate +silver\.orders ", row)
    ]
    assert re.fullmatch(
        r"quarantine_rate +silver\.orders +12\.50% \(1 of 8 records this run newly quarantined\) "
        r"+<= 12\.4% +FAILED",
        rate,
    )

    refused = lakehouse("audits", "--drop-branch", branch, "--data-dir", str(data_dir))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"error: branch {branch} is still waiting to be published (main has not moved on since its run): "
        f"`lakehouse audits --branch {branch} --data-dir {data_dir}`, with the `--audit-*` options its run "
        "had, shows why it was held back. Dropping it loses no record (its Bronze runs stay, and the next "
        "run merges them again): to drop it anyway, add --even-if-waiting"
    ]
    holding = sorted(name for name, refs in branches(data_dir).items() if branch in refs)
    assert "silver.orders" in holding

    # The next run that publishes (it merges the held-back records again) names the branch left behind.
    with FixedPagesApi([[order(9, 10.0)]]) as api:
        published = run_on(api, data_dir, max_quarantine_percent="50")
    assert published.returncode == 0, published.stderr
    assert (
        f"Branch {branch}, left by an earlier run, is out of date (main moved on since it was made): "
        f"`lakehouse audits --drop-branch {branch} --data-dir {data_dir}` drops it."
    ) in published.stdout

    dropped = lakehouse("audits", "--drop-branch", branch, "--even-if-waiting", "--data-dir", str(data_dir))

    assert dropped.returncode == 0, dropped.stderr
    (said,) = dropped.stdout.splitlines()
    assert said.startswith(f"Dropped branch {branch} from {len(holding)} tables: ")
    assert sorted(said.split(": ", 1)[1].split(", ")) == holding
    assert not any(branch in refs for refs in branches(data_dir).values())
