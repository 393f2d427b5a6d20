"""The Glue jobs run the uploaded entry points with the Iceberg catalog settings the local run uses."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from components.archive import write_zip
from components.bundles import module_file
from components.spark_job import GLUE_VERSION
from etl.audit.checks import AuditThresholds
from etl.catalog import glue_catalog_conf, glue_conf_argument
from etl.pipeline import AUDIT, GOLD, PIPELINE, SILVER, Step, StepKind
from tests.infra.stacks import Resource, StackRun

SPARK_STEPS = [step for step in PIPELINE.steps if step.kind is StepKind.SPARK_JOB]


def _job(stack: StackRun, step: Step) -> Resource:
    return stack.one("aws:glue/job:Job", f"medallion-{step.name.lower()}-job")


def _uploaded_object(stack: StackRun, uri: str) -> Resource:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    (uploaded,) = [
        o
        for o in stack.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if o.inputs["bucket"] == bucket and o.inputs["key"] == key
    ]
    assert bucket == stack.outputs["bucketNames"]["artifacts"]
    return uploaded


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_glue_version_matches_the_local_spark_and_iceberg(stack: StackRun) -> None:
    # Glue 5.1 = Spark 3.5.6, Python 3.11, Iceberg 1.10.0; requirements.txt pins pyspark 3.5.6.
    assert GLUE_VERSION == "5.1"
    for step in SPARK_STEPS:
        job = _job(stack, step)
        assert job.inputs["glueVersion"] == "5.1"
        assert job.inputs["command"]["name"] == "glueetl"
        assert job.inputs["command"]["pythonVersion"] == "3"
    assert "pyspark==3.5.6" in Path("requirements.txt").read_text(encoding="utf-8").split()


@pytest.mark.parametrize("step", SPARK_STEPS, ids=lambda s: s.name)
def test_the_script_is_the_uploaded_entry_point(stack: StackRun, step: Step) -> None:
    script = _uploaded_object(stack, _job(stack, step).inputs["command"]["scriptLocation"])
    source = Path(script.inputs["source"]["$FileAsset"])
    assert source == module_file(step.entry_point)
    # Content-addressed: the key changes exactly when the script does.
    assert _sha256(source) in script.inputs["key"]
    assert script.inputs["key"].endswith("/job.py")


@pytest.mark.parametrize("step", SPARK_STEPS, ids=lambda s: s.name)
def test_the_etl_package_rides_along_as_extra_py_files(stack: StackRun, step: Step) -> None:
    package = _uploaded_object(stack, _job(stack, step).inputs["defaultArguments"]["--extra-py-files"])
    zip_path = Path(package.inputs["source"]["$FileAsset"])
    assert _sha256(zip_path) in package.inputs["key"]
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    assert {"etl/__init__.py", "etl/silver/job.py", "etl/gold/job.py", "etl/tables.py"} <= names
    assert {
        "datasets/gold/daily_sales.sql",
        "datasets/gold/customer_summary.sql",
        "datasets/orders.py",
    } <= names
    assert not any("__pycache__" in name for name in names)


@pytest.mark.parametrize("step", SPARK_STEPS, ids=lambda s: s.name)
def test_job_arguments_are_the_step_settings_and_the_iceberg_catalog(stack: StackRun, step: Step) -> None:
    arguments = _job(stack, step).inputs["defaultArguments"]
    buckets = stack.outputs["bucketNames"]
    databases = stack.outputs["databaseNames"]
    assert arguments["--datalake-formats"] == "iceberg"
    assert arguments["--conf"] == glue_conf_argument(
        glue_catalog_conf(warehouse=f"s3://{buckets['silver']}/warehouse")
    )
    assert arguments["--job-language"] == "python"
    assert arguments["--enable-metrics"] == arguments["--enable-observability-metrics"] == "true"
    assert arguments["--enable-continuous-cloudwatch-log"] == "true"
    settings = {
        "--bronze-root": f"s3://{buckets['bronze']}",
        "--silver-database": databases["silver"],
        "--gold-database": databases["gold"],
        # Reliable checkpoints under the bucket of the layer the job writes (FLEX may take executors away).
        "--checkpoint-root": f"s3://{buckets['silver']}/_checkpoints",
        # The audits' thresholds: the stack config's (Pulumi.yaml defaults here); never publish anyway.
        "--publish-anyway": "false",
        # Gold: rebuilt in full, the Pulumi.yaml default of goldRefresh.
        "--refresh": "full",
        **AuditThresholds().arguments(),
    }
    own = {name: value for name, value in arguments.items() if name in settings}
    assert own == {name: settings[name] for name in step.settings}
    # Per-run inputs come from the state machine, never from the defaults.
    assert not set(step.inputs) & set(arguments)


@pytest.mark.parametrize("step", SPARK_STEPS, ids=lambda s: s.name)
def test_a_job_installs_the_python_modules_its_step_names_at_the_pinned_versions(
    stack: StackRun, step: Step
) -> None:
    arguments = _job(stack, step).inputs["defaultArguments"]
    pins = dict(
        line.split("==")
        for line in Path("requirements.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    expected = ",".join(f"{name}=={pins[name]}" for name in step.python_modules)
    assert arguments.get("--additional-python-modules", "") == expected
    # Silver validates records, with the quick path; the other jobs install nothing.
    assert (step is SILVER) == (expected.startswith("msgspec==")), expected


@pytest.mark.parametrize("step", SPARK_STEPS, ids=lambda s: s.name)
def test_job_logs_go_to_groups_with_the_stack_retention(stack: StackRun, step: Step) -> None:
    prefix = _job(stack, step).inputs["defaultArguments"]["--custom-logGroup-prefix"]
    groups = {g.inputs["name"]: g for g in stack.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for stream in ("error", "output"):
        assert groups[f"{prefix}/{stream}"].inputs["retentionInDays"] == {"dev": 14, "prod": 365}[stack.stack]


def test_jobs_are_sized_and_limited_as_the_stack_asks(stack: StackRun) -> None:
    expected = {
        "dev": {
            SILVER.name: ("G.1X", 2),
            GOLD.name: ("G.1X", 2),
            AUDIT.name: ("G.1X", 2),
            "class": "FLEX",
            "timeout": 60,
        },
        "prod": {
            SILVER.name: ("G.2X", 10),
            GOLD.name: ("G.2X", 5),
            AUDIT.name: ("G.2X", 5),  # sized as Gold, the first layer it writes
            "class": "STANDARD",
            "timeout": 240,
        },
    }[stack.stack]
    for step in SPARK_STEPS:
        job = _job(stack, step).inputs
        assert (job["workerType"], job["numberOfWorkers"]) == expected[step.name]
        assert job["executionClass"] == expected["class"]
        assert job["timeout"] == expected["timeout"]
        assert job["executionProperty"] == {"maxConcurrentRuns": 1}
        assert job["maxRetries"] == 0


def test_zips_are_byte_for_byte_reproducible(tmp_path: Path) -> None:
    entries = {"b.py": b"print('b')\n", "a/__init__.py": b""}
    first = write_zip(tmp_path / "one.zip", entries)
    second = write_zip(tmp_path / "two.zip", dict(reversed(list(entries.items()))))
    changed = write_zip(tmp_path / "three.zip", {**entries, "b.py": b"print('c')\n"})
    assert first.sha256 == second.sha256
    assert changed.sha256 != first.sha256
    assert first.content_addressed_key("glue/python") == f"glue/python/{first.sha256}/one.zip"


def _function_environment(stack: StackRun) -> dict[str, str]:
    [function] = stack.of_type("aws:lambda/function:Function")
    variables: dict[str, str] = function.inputs["environment"]["variables"]
    return variables
