"""The Lambda bundle: built reproducibly, free of Spark, and runnable on its own in a clean interpreter."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import zipfile
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.specifiers import SpecifierSet
from pulumi.runtime.rpc import _special_secret_sig as SECRET_SIGNATURE
from pulumi.runtime.rpc import _special_sig_key as SIGNATURE_KEY

from components.bundles import (
    LAMBDA_DEPENDENCIES,
    LAMBDA_MARKER_ENVIRONMENT,
    LAMBDA_PYTHON,
    BundleError,
    build_lambda_bundle,
    distribution_closure,
    pinned_versions,
)
from components.ingest_function import RUNTIME
from etl.bronze.settings import ENV_TOKEN_SECRET_ARN, SOURCE_ENV, IngestionSettings, SettingsError
from etl.pipeline import INGESTION_RESULT_FIELDS
from local.sample_api.server import SampleApiServer
from tests.infra.stack_run import TEST_TOKEN
from tests.infra.stacks import StackRun

# What the Lambda Python runtime provides besides the standard library.
LAMBDA_RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")

# Modules the function must neither need nor see.
ABSENT = ("pyspark", "pulumi", "pytest", "etl.silver", "etl.gold", "etl.spark", "local")
RUN_HANDLER = """
import json, sys, types
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import importlib.util
from etl.bronze.handler import handler
import requests, aws_lambda_powertools
context = types.SimpleNamespace(
    function_name="lakehouse-test-bronze", function_version="$LATEST", memory_limit_in_mb=512,
    invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:lakehouse-test-bronze",
    aws_request_id="00000000-0000-0000-0000-000000000000",
)
result = handler({"run_id": "bundle-run", "started_at": "2024-05-01T00:00:00Z", "dataset": "orders"}, context)
print(json.dumps({
    "result": result,
    "python": "%d.%d" % sys.version_info[:2],
    "handler_file": sys.modules["etl.bronze.handler"].__file__,
    "requests": [requests.__version__, requests.__file__],
    "powertools_file": aws_lambda_powertools.__file__,
    "visible": {m: importlib.util.find_spec(m) is not None for m in sys.argv[3].split(",")},
}))
"""


def _runs_lambda_python(executable: str) -> bool:
    try:
        completed = subprocess.run(
            [executable, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return False
    return completed.returncode == 0 and completed.stdout.strip() == LAMBDA_PYTHON


@pytest.fixture(scope="module")
def lambda_python() -> str:
    """An interpreter of the function's Python version: on PATH, else one pyenv installed."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [
        shutil.which(f"python{LAMBDA_PYTHON}"),
        *sorted(glob.glob(f"{pyenv_root}/versions/{LAMBDA_PYTHON}.*/bin/python{LAMBDA_PYTHON}")),
    ]
    for candidate in candidates:
        if candidate and _runs_lambda_python(candidate):
            return candidate
    message = f"no Python {LAMBDA_PYTHON} interpreter to run the bundle as the {RUNTIME} runtime would"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: install python{LAMBDA_PYTHON}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bundle")
    artifact = build_lambda_bundle(directory / "ingest.zip")
    extracted = directory / "task"
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(extracted)
    return extracted


@pytest.fixture(scope="module")
def lambda_runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the runtime's own packages (/var/runtime): links to boto3 and its dependencies."""
    directory = tmp_path_factory.mktemp("runtime")
    for name in LAMBDA_RUNTIME:
        distribution = metadata.distribution(name)
        tops = {PurePosixPath(str(f)).parts[0] for f in distribution.files or []}
        for top in tops:
            if top.endswith((".dist-info", "__pycache__")) or top == "..":
                continue
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and not (directory / top).exists():
                (directory / top).symlink_to(source)
    return directory


def test_the_handler_runs_from_the_bundle_in_a_clean_interpreter_of_the_function_runtime(
    bundle: Path, lambda_runtime: Path, lambda_python: str, sample_api: SampleApiServer, tmp_path: Path
) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "LAKEHOUSE_BRONZE_ROOT": str(tmp_path / "bronze"),
        "SOURCE_BASE_URL": sample_api.url,
        "SOURCE_PAGE_SIZE": "100",
        "SOURCE_API_TOKEN": "local-token",
    }
    # -I: no user site, no PYTHON* variables, no working directory; -S: no site-packages at all.
    completed = subprocess.run(
        [lambda_python, "-I", "-S", "-c", RUN_HANDLER, str(bundle), str(lambda_runtime), ",".join(ABSENT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["python"] == LAMBDA_PYTHON
    assert Path(report["handler_file"]).is_relative_to(bundle)
    assert Path(report["powertools_file"]).is_relative_to(bundle)
    version, location = report["requests"]
    assert Path(location).is_relative_to(bundle)
    assert version == pinned_versions()["requests"]
    assert report["visible"] == dict.fromkeys(ABSENT, False)
    result = report["result"]
    # Every field the state machine selects from the result (it may carry more).
    assert set(INGESTION_RESULT_FIELDS) <= set(result)
    assert result["run_id"] == "bundle-run"
    assert result["records"] > 0
    assert (tmp_path / "bronze" / "_manifests" / "orders" / "bundle-run.json").is_file()


def test_the_bundle_holds_the_handler_closure_and_pinned_dependencies_only(bundle: Path) -> None:
    etl_files = sorted(p.relative_to(bundle).as_posix() for p in (bundle / "etl").rglob("*.py"))
    assert "etl/bronze/handler.py" in etl_files
    assert not any(f.startswith(("etl/silver/", "etl/gold/")) for f in etl_files)
    assert "local/session.py" not in etl_files and "etl/spark/jobs.py" not in etl_files
    for path in (bundle / "etl").rglob("*.py"):
        assert "pyspark" not in path.read_text(encoding="utf-8"), path
    pins = pinned_versions()
    for requirement in LAMBDA_DEPENDENCIES:
        name = metadata.distribution(requirement).metadata["Name"]
        wanted = f"{name.replace('-', '_')}-{pins[requirement]}.dist-info"
        assert (bundle / wanted).is_dir() or any(
            d.name.lower() == wanted.lower() for d in bundle.glob("*.dist-info")
        ), wanted
    assert not list(bundle.rglob("*.so")), "compiled modules would tie the bundle to one architecture"
    assert not (bundle / "boto3").exists() and not (bundle / "botocore").exists()


def test_the_build_is_reproducible(tmp_path: Path) -> None:
    first = build_lambda_bundle(tmp_path / "a" / "ingest.zip")
    second = build_lambda_bundle(tmp_path / "b" / "ingest.zip")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    with zipfile.ZipFile(first.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_the_function_runs_the_built_bundle_with_the_stack_settings(stack: StackRun) -> None:
    (function,) = stack.of_type("aws:lambda/function:Function")
    inputs = function.inputs
    assert inputs["handler"] == "etl.bronze.handler.handler"
    assert inputs["runtime"] == "python3.13"
    assert Path(inputs["code"]["$FileArchive"]).name == "bronze.zip"
    assert inputs["reservedConcurrentExecutions"] == 1
    assert inputs["tracingConfig"] == {"mode": "Active"}
    sizing = {"dev": (300, 512, "DEBUG"), "prod": (900, 1024, "INFO")}[stack.stack]
    assert (inputs["timeout"], inputs["memorySize"], inputs["loggingConfig"]["applicationLogLevel"]) == sizing
    log_group = stack.one("aws:cloudwatch/logGroup:LogGroup", "medallion-bronze-logs")
    assert inputs["loggingConfig"]["logGroup"] == log_group.inputs["name"]
    assert log_group.inputs["retentionInDays"] == {"dev": 14, "prod": 365}[stack.stack]

    variables = inputs["environment"]["variables"]
    assert set(SOURCE_ENV.values()) <= set(variables)
    assert variables[ENV_TOKEN_SECRET_ARN] == stack.outputs["sourceTokenSecretArn"]
    # The function's own settings code reads the environment the stack gives it, with the dataset the
    # event names (as the handler passes it).
    settings = IngestionSettings.from_environment(variables, dataset="orders")
    assert settings.bronze_root == f"s3://{stack.outputs['bucketNames']['bronze']}"
    assert "LAKEHOUSE_DATASET" not in variables  # each invocation names its dataset
    with pytest.raises(SettingsError, match='the event\'s "dataset" field'):
        IngestionSettings.from_environment(variables)  # an event that names none is refused
    assert settings.source.base_url == "https://api.example.com"
    assert settings.token is None


def test_the_token_reaches_aws_only_through_the_secret(stack: StackRun) -> None:
    (version,) = stack.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    (secret,) = stack.of_type("aws:secretsmanager/secret:Secret")
    # The value travels as a Pulumi secret: encrypted in the state, masked in previews.
    assert version.inputs["secretString"] == {
        SIGNATURE_KEY: SECRET_SIGNATURE,
        "value": "test-token-for-mocks",
    }
    key = stack.one("aws:kms/key:Key", "medallion-secrets-key")
    assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
    for resource in stack.resources:
        if resource is not version:
            assert TEST_TOKEN not in json.dumps(resource.inputs), resource.name


def test_the_bundle_is_built_for_the_function_runtime_python() -> None:
    assert RUNTIME == f"python{LAMBDA_PYTHON}"
    assert LAMBDA_MARKER_ENVIRONMENT["python_version"] == LAMBDA_PYTHON
    # Every bundled distribution declares it runs on that Python (the build checks this too).
    for distribution in distribution_closure(LAMBDA_DEPENDENCIES):
        requires_python = distribution.metadata["Requires-Python"] or ""
        assert SpecifierSet(requires_python).contains(f"{LAMBDA_PYTHON}.0"), distribution.metadata["Name"]


def test_a_dependency_that_does_not_support_the_function_python_stops_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(LAMBDA_MARKER_ENVIRONMENT, "python_full_version", "3.9.0")
    with pytest.raises(BundleError, match=r"requests .* requires Python >=3\.10"):
        distribution_closure(["requests"])
