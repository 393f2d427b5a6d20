"""Builds of the code AWS runs: the Lambda bundle of the ingestion and the `etl` package for the Glue jobs.

Both carry the dataset declarations (`datasets/`, with the Gold SQL in the Glue package): the jobs and the
function find them by name through etl/registry.py, which no import walker sees.

The Lambda bundle holds exactly the `etl` modules the handler and the declarations import (found by
reading their imports, so the Spark parts stay out) and the pure-Python files of its dependencies as
installed from requirements.txt. Building from the installed distributions needs no network and pins the
bundle to the tested versions.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from components.archive import Artifact, write_zip

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = PROJECT_ROOT / "build"
REQUIREMENTS_FILE = PROJECT_ROOT / "requirements.txt"
ETL_PACKAGE = "etl"
DATASETS_PACKAGE = "datasets"

# What the ingestion imports besides the standard library, `etl` and the Lambda runtime's boto3.
LAMBDA_DEPENDENCIES = ("requests", "aws-lambda-powertools")
# The Lambda Python runtime ships these; bundling them would only pin an older copy over the runtime's.
LAMBDA_RUNTIME_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer"})
LAMBDA_RUNTIME_MODULES = frozenset({"boto3", "botocore", "s3transfer"})
# Spark never runs in Lambda; a module that imports it must not reach the bundle.
SPARK_MODULES = frozenset({"pyspark", "py4j"})
# The Python of the function's Lambda runtime (python3.13, on Amazon Linux 2023). The Glue jobs stay on
# Python 3.11, so the `etl` code both share must run on both.
LAMBDA_PYTHON = "3.13"
# The platform of the function (LAMBDA_PYTHON on arm64 Linux), for dependency markers.
LAMBDA_MARKER_ENVIRONMENT = {
    "python_version": LAMBDA_PYTHON,
    "python_full_version": f"{LAMBDA_PYTHON}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "implementation_version": f"{LAMBDA_PYTHON}.0",
    "platform_release": "",
    "platform_version": "",
    "platform_python_implementation": "CPython",
    "extra": "",
}
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
# dist-info files that describe this machine's installation rather than the distribution.
INSTALLATION_RECORDS = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


class BundleError(RuntimeError):
    """The bundle cannot be built as asked; the message says what to change."""


def build_lambda_bundle(handler_module: str, destination: Path) -> Artifact:
    """Zip the handler's `etl` modules with the pure-Python files of LAMBDA_DEPENDENCIES."""
    distributions = distribution_closure(LAMBDA_DEPENDENCIES)
    entries: dict[str, bytes] = {}
    bundled = _top_level_modules(distributions)
    for module in (handler_module, *declaration_modules()):
        for path in module_closure(module, bundled):
            entries[path.relative_to(PROJECT_ROOT).as_posix()] = path.read_bytes()
    for distribution in distributions:
        for name, source in distribution_files(distribution):
            entries[name] = source.read_bytes()
    return write_zip(destination, entries)


def build_etl_package(destination: Path) -> Artifact:
    """Zip the whole `etl` and `datasets` packages (code and package data) for the Glue jobs'
    `--extra-py-files`."""
    entries = {
        path.relative_to(PROJECT_ROOT).as_posix(): path.read_bytes()
        for package in (ETL_PACKAGE, DATASETS_PACKAGE)
        for path in (PROJECT_ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return write_zip(destination, entries)


def declaration_modules() -> list[str]:
    """Every module under datasets/ (declarations and Gold models), as dotted names."""
    root = PROJECT_ROOT / DATASETS_PACKAGE
    return sorted(
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts
    )


def module_file(module: str) -> Path:
    """The source file of a project module, e.g. etl.extract.handler -> etl/extract/handler.py."""
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise BundleError(f"module {module} has no source file under {PROJECT_ROOT}")


def module_closure(entry_module: str, bundled_modules: set[str]) -> list[Path]:
    """Source files of `entry_module` and every `etl` module it imports, directly or not, with their packages.

    Imports under `if TYPE_CHECKING:` are skipped: they never run. A module importing Spark, or a library
    neither in `bundled_modules` nor in the Lambda runtime, stops the build with a message naming both.
    """
    provided = (
        bundled_modules
        | LAMBDA_RUNTIME_MODULES
        | set(sys.stdlib_module_names)
        | {ETL_PACKAGE, DATASETS_PACKAGE}
    )
    seen: dict[str, Path] = {}
    pending = [entry_module]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = module_file(module)
        seen[module] = path
        parts = module.split(".")
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        for imported in _runtime_imports(path, module):
            top = imported.split(".")[0]
            if top in SPARK_MODULES:
                raise BundleError(f"{module} imports {imported}: the Lambda bundle must not need Spark")
            if top not in provided:
                raise BundleError(
                    f"{module} imports {imported}, which is neither in the standard library, the Lambda "
                    f"runtime nor {', '.join(LAMBDA_DEPENDENCIES)}: add its distribution to "
                    "LAMBDA_DEPENDENCIES"
                )
            if top in (ETL_PACKAGE, DATASETS_PACKAGE):
                pending.append(_project_module(imported))
    return sorted(set(seen.values()))


def _project_module(imported: str) -> str:
    """`etl.extract.settings` for a module import; `etl.extract` when the last part is an attribute."""
    try:
        module_file(imported)
    except BundleError:
        return imported.rpartition(".")[0]
    return imported


def _runtime_imports(path: Path, module: str) -> Iterator[str]:
    """Absolute names of what `path` imports outside `if TYPE_CHECKING:` blocks, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (n for orelse in child.orelse for n in (orelse, *_walk_runtime(orelse)))
            continue
        yield child
        yield from _walk_runtime(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def distribution_closure(roots: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions `roots` need on Lambda, roots first checked against requirements.txt."""
    pins = pinned_versions()
    found: dict[str, metadata.Distribution] = {}
    pending = [Requirement(root) for root in roots]
    for requirement in pending:
        name = canonicalize_name(requirement.name)
        if name in found or name in LAMBDA_RUNTIME_DISTRIBUTIONS:
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as e:
            raise BundleError(f"{requirement.name} is not installed: run `make setup`") from e
        pinned = pins.get(name)
        if pinned is not None and distribution.version != pinned:
            raise BundleError(
                f"{requirement.name} {distribution.version} is installed but requirements.txt pins {pinned}: "
                "run `make setup`"
            )
        _require_lambda_python(distribution)
        found[name] = distribution
        for line in distribution.requires or []:
            dependency = Requirement(line)
            if dependency.marker is None or dependency.marker.evaluate(LAMBDA_MARKER_ENVIRONMENT):
                pending.append(dependency)
    return [found[name] for name in sorted(found)]


def _require_lambda_python(distribution: metadata.Distribution) -> None:
    """Stop the build when a distribution declares it does not run on the function's Python."""
    requires_python = distribution.metadata["Requires-Python"]
    python = LAMBDA_MARKER_ENVIRONMENT["python_full_version"]
    if requires_python and not SpecifierSet(requires_python).contains(python, prereleases=True):
        raise BundleError(
            f"{distribution.metadata['Name']} {distribution.version} requires Python {requires_python}, "
            f"but the function runs Python {LAMBDA_PYTHON}: pin one that supports it in requirements.txt"
        )


def pinned_versions(requirements_file: Path = REQUIREMENTS_FILE) -> dict[str, str]:
    """`name==version` pins of a requirements file, by canonical name."""
    pins: dict[str, str] = {}
    for line in requirements_file.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+).*", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def distribution_files(distribution: metadata.Distribution) -> Iterator[tuple[str, Path]]:
    """(archive name, installed file) of a distribution's importable files and metadata.

    Compiled modules are left out, so the bundle runs on any Lambda architecture; each must have a
    pure-Python twin (as charset_normalizer ships), or the build stops.
    """
    names = {PurePosixPath(str(f)) for f in distribution.files or []}
    for name in sorted(names):
        if name.parts[0] == ".." or "__pycache__" in name.parts or name.suffix == ".pyc":
            continue
        if name.parent.name.endswith(".dist-info") and name.name in INSTALLATION_RECORDS:
            continue
        if name.suffix in NATIVE_SUFFIXES:
            _require_pure_python_twin(distribution, name, names)
            continue
        yield name.as_posix(), Path(str(distribution.locate_file(name)))


def _require_pure_python_twin(
    distribution: metadata.Distribution, name: PurePosixPath, names: set[PurePosixPath]
) -> None:
    stem = name.name.split(".")[0]
    # mypyc's shared helper module has no twin: it only serves the compiled modules that are left out.
    if stem.endswith("__mypyc") or name.with_name(f"{stem}.py") in names:
        return
    raise BundleError(
        f"{distribution.metadata['Name']} ships compiled code ({name}) without a pure-Python fallback; "
        "the Lambda bundle cannot carry it"
    )


def _top_level_modules(distributions: Iterable[metadata.Distribution]) -> set[str]:
    modules: set[str] = set()
    for distribution in distributions:
        for name in distribution.files or []:
            first = PurePosixPath(str(name)).parts[0]
            if first.endswith(".py"):
                modules.add(first[: -len(".py")])
            elif not first.endswith((".dist-info", ".data")) and first not in ("..", "__pycache__"):
                modules.add(first)
    return modules
