"""The dependencies point one way, and what ships to AWS carries no local tooling.

`components/` (Pulumi) never imports Spark; `etl/` (the engine) and `datasets/` never import Pulumi, and the
engine imports neither the declarations (it finds them by name) nor `local/` nor `components/`. Each is
checked by importing every module of a package in a fresh interpreter and listing what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from components.bundles import PROJECT_ROOT, SPARK_PACKAGES, build_etl_package, build_lambda_bundle

SPARK = ("pyspark", "py4j")
PULUMI = ("pulumi", "pulumi_aws")
LOCAL_TOOLING = ("local",)

LOADED_BY = """
import importlib, json, pkgutil, sys
for package in sys.argv[1].split(","):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def top_level_modules_loaded_by(*packages: str) -> set[str]:
    """The top-level modules loaded after importing every module of `packages` in a new interpreter."""
    completed = subprocess.run(
        [sys.executable, "-c", LOADED_BY, ",".join(packages)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(completed.stdout)
    return set(loaded)


def imported_top_levels(source: bytes) -> set[str]:
    """The top-level modules a Python file imports (at any depth, TYPE_CHECKING blocks included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_infrastructure_code_never_loads_spark() -> None:
    loaded = top_level_modules_loaded_by("components")
    assert "pulumi" in loaded  # the check sees what the components really load
    assert not loaded & {*SPARK, *LOCAL_TOOLING}


def test_the_engine_and_the_declarations_never_load_pulumi_nor_local_tooling() -> None:
    loaded = top_level_modules_loaded_by("etl", "datasets")
    assert "pyspark" in loaded  # the jobs were imported
    assert not loaded & {*PULUMI, *LOCAL_TOOLING, "components"}


def test_the_engine_finds_the_declarations_by_name_and_never_imports_them() -> None:
    loaded = top_level_modules_loaded_by("etl")
    assert "datasets" not in loaded
    for path in (PROJECT_ROOT / "etl").rglob("*.py"):
        assert not imported_top_levels(path.read_bytes()) & {"datasets", "local", "components"}, path


@pytest.mark.parametrize("bundle", ["lambda", "glue"])
def test_what_ships_to_aws_carries_no_local_tooling(tmp_path: Path, bundle: str) -> None:
    build = build_lambda_bundle if bundle == "lambda" else build_etl_package
    with zipfile.ZipFile(build(tmp_path / f"{bundle}.zip").path) as archive:
        names = [PurePosixPath(name) for name in archive.namelist()]
        project = {name: archive.read(str(name)) for name in names if name.parts[0] in ("etl", "datasets")}
    assert not [name for name in names if name.parts[0] in (*LOCAL_TOOLING, "components", "tests")]
    assert PurePosixPath("etl/bronze/handler.py") in project
    assert PurePosixPath("datasets/orders.py") in project
    spark_side = [name for name in project if any(name.is_relative_to(p) for p in SPARK_PACKAGES)]
    if bundle == "lambda":
        assert not spark_side
        for name, source in project.items():
            if name.suffix == ".py":
                assert not imported_top_levels(source) & {*SPARK, *PULUMI, *LOCAL_TOOLING}, name
    else:
        assert PurePosixPath("etl/silver/job.py") in spark_side
        assert PurePosixPath("datasets/gold/daily_sales.sql") in project
