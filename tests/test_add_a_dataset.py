"""Adding a dataset is adding one file: the README's example, dropped into a copy of the project with no
other edit, is ingested, validated and merged by the local pipeline, and the infrastructure of both stacks
gives it its Bronze prefixes, its Silver tables and its branch of the state machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.infra.stacks import STACKS, StackRun
from tests.test_end_to_end import read_table

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", "data", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)
PRODUCTS_PAGE = (
    b'{"data": [{"sku": "KETTLE", "price": "24.90", "updated_at": "2026-01-05T10:00:00Z"}, '
    b'{"sku": "MUG", "price": -1, "updated_at": "2026-01-05T10:00:00Z"}], "next_cursor": null}'
)


def readme_declaration() -> str:
    """The `datasets/products.py` of the README's "Add a dataset" section, as printed there."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Add a dataset") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("project") / "lakehouse"
    shutil.copytree(PROJECT_ROOT, copy, ignore=LEFT_OUT)
    (copy / "datasets" / "products.py").write_text(readme_declaration(), encoding="utf-8")
    return copy


@pytest.fixture
def products_api() -> Iterator[str]:
    """Serves the products page at /v1/products and an empty page at every other path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            products = urlsplit(self.path).path == "/v1/products"
            body = PRODUCTS_PAGE if products else b'{"data": [], "next_cursor": null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def in_copy(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.mark.spark
def test_the_local_pipeline_loads_the_new_dataset(project: Path, products_api: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # One of the two products is invalid, which the quarantine-rate audit would stop: published anyway.
    run = (
        "-m",
        "local",
        "run",
        "--source-url",
        products_api,
        "--data-dir",
        str(data_dir),
        "--publish-anyway",
    )
    result = in_copy(project, *run)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\nrecords ingested +0 +0 +2\n", result.stdout)  # customers, orders, products
    rows = {(row["sku"], str(row["price"])) for row in read_table(data_dir, "silver.products")}
    assert rows == {("KETTLE", "24.90")}
    rejected = [
        (row["reason"], row["raw_record"]) for row in read_table(data_dir, "silver.products_quarantine")
    ]
    assert rejected == [
        ("negative_price", '{"sku": "MUG", "price": -1, "updated_at": "2026-01-05T10:00:00Z"}')
    ]
    ledger = read_table(data_dir, "silver.ingestion_runs")
    assert sorted(run["dataset"] for run in ledger) == ["customers", "orders", "products"]


@pytest.mark.parametrize("stack_name", STACKS)
def test_the_infrastructure_gives_the_new_dataset_its_prefixes_tables_and_branch(
    project: Path, stack_name: str, tmp_path: Path
) -> None:
    output = tmp_path / f"{stack_name}.json"
    result = in_copy(project, "-m", "tests.infra.stack_run", stack_name, str(output))
    assert result.returncode == 0, result.stderr
    stack = StackRun.from_json(output.read_text(encoding="utf-8"))

    definition = stack.state_machine_definition()
    assert definition["States"]["ListDatasets"]["Parameters"] == {
        "names": ["customers", "orders", "products"]
    }
    bronze = f"arn:aws:s3:::{stack.outputs['bucketNames']['bronze']}"
    resources = {
        resource
        for policy, document in stack.policy_documents()
        if policy.type == "aws:iam/rolePolicy:RolePolicy"
        for statement in document["Statement"]
        for resource in (
            [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        )
    }
    assert {
        f"{bronze}/products/*",
        f"{bronze}/_manifests/products/*",
        f"{bronze}/_state/products/watermark.json",
    } <= resources
    assert any(arn.endswith("/products") for arn in resources if ":glue:" in arn)
    assert any(arn.endswith("/products_quarantine") for arn in resources if ":glue:" in arn)
    assert json.dumps(definition).count('"dataset.$": "$.dataset"') == 1  # the one Ingest task, in the branch
    reports = {query.inputs["name"] for query in stack.of_type("aws:athena/namedQuery:NamedQuery")}
    assert f"lakehouse_{stack_name}_silver.products_quarantine by reason" in reports
