"""Builds of the code AWS runs: the Lambda bundle of the Bronze ingestion and the packages of the Glue jobs.

What runs in AWS is the engine (`etl/`) and the dataset declarations (`datasets/`); the local tooling
(`local/`: CLI, runner, sample API) never ships. The function gets the engine without its Spark packages,
which it never imports, and the pure-Python files of its dependencies as installed from requirements.txt.
Building from the installed distributions needs no network and pins the bundle to the tested versions.
"""

from __future__ import annotations

import re
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
# What ships to AWS: the engine and the declarations it finds by name (etl/registry.py).
SHIPPED_PACKAGES = ("etl", "datasets")
# The Spark side of the engine: the Glue jobs run it, the function never imports it.
# (The Audit job is Spark; the audits it checks, etl/audit/checks.py, are plain declarations.)
SPARK_PACKAGES = ("etl/silver", "etl/gold", "etl/spark", "etl/audit/job.py", "etl/audit/kept_branches.py")

# What the ingestion imports besides the standard library, `etl` and the Lambda runtime's boto3.
LAMBDA_DEPENDENCIES = ("requests", "aws-lambda-powertools")
# The Lambda Python runtime ships these; bundling them would only pin an older copy over the runtime's.
LAMBDA_RUNTIME_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer"})
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


def build_lambda_bundle(destination: Path) -> Artifact:
    """Zip the engine without its Spark packages, the declarations, and the pure-Python files of
    LAMBDA_DEPENDENCIES."""
    entries = package_files(SHIPPED_PACKAGES, leave_out=SPARK_PACKAGES)
    for distribution in distribution_closure(LAMBDA_DEPENDENCIES):
        for name, source in distribution_files(distribution):
            entries[name] = source.read_bytes()
    return write_zip(destination, entries)


def build_etl_package(destination: Path) -> Artifact:
    """Zip the engine and the declarations (code and package data) for the Glue jobs' `--extra-py-files`."""
    return write_zip(destination, package_files(SHIPPED_PACKAGES))


def package_files(packages: Iterable[str], leave_out: Iterable[str] = ()) -> dict[str, bytes]:
    """The files of the project's `packages` by archive name, those under `leave_out` excepted."""
    left_out = tuple(PurePosixPath(folder) for folder in leave_out)
    entries: dict[str, bytes] = {}
    for package in packages:
        for path in (PROJECT_ROOT / package).rglob("*"):
            name = PurePosixPath(path.relative_to(PROJECT_ROOT).as_posix())
            if not path.is_file() or "__pycache__" in name.parts or name.suffix == ".pyc":
                continue
            if not any(name.is_relative_to(folder) for folder in left_out):
                entries[name.as_posix()] = path.read_bytes()
    return entries


def module_file(module: str) -> Path:
    """The source file of a project module, e.g. etl.bronze.handler -> etl/bronze/handler.py."""
    base = PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise BundleError(f"module {module} has no source file under {PROJECT_ROOT}")


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
