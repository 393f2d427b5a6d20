"""Stack configuration: one module reads every key, Pulumi.yaml documents it, mistakes name the key."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pulumi
import pytest
import yaml

from components.config import ConfigError, audit_key, declared_keys, load_stack_config, source_key
from etl.audit.checks import AuditThresholds
from etl.bronze.settings import SOURCE_ENV, SourceSettings
from etl.pipeline import BRONZE
from etl.tables import Layer
from tests.infra.stack_run import PROJECT_ROOT, TOKEN_KEY, stack_config
from tests.infra.stacks import STACKS

Configure = Callable[[dict[str, str]], None]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """Set Pulumi's process-wide configuration for one test, then clear it again."""

    def apply(config: dict[str, str]) -> None:
        pulumi.runtime.set_all_config(config, [TOKEN_KEY])

    yield apply
    pulumi.runtime.set_all_config({}, [])


def _problems(configure: Configure, config: dict[str, str]) -> list[str]:
    configure(config)
    with pytest.raises(ConfigError) as raised:
        load_stack_config("lakehouse", "dev")
    return [line.strip() for line in str(raised.value).splitlines()[1:]]


def test_every_key_is_documented_with_type_and_default_or_required() -> None:
    for key in declared_keys().values():
        assert key.description, key.name
        assert key.type in ("string", "integer", "boolean"), key.name
        if key.secret:
            assert not key.has_default, f"{key.name}: a secret has no default"
    required = {k.name for k in declared_keys().values() if not k.has_default}
    assert required == {"sourceBaseUrl", "sourceApiToken"}


def test_the_source_defaults_are_the_ingestions_own() -> None:
    keys = declared_keys()
    for field in fields(SourceSettings):
        if field.name in SOURCE_ENV and field.name != "base_url":
            key = keys[source_key(field.name)]
            assert key.default == field.default, key.name
    assert {source_key(name) for name in SOURCE_ENV} <= set(keys)
    assert "sourcePath" not in keys  # each dataset declares its path


def test_only_the_config_module_reads_configuration() -> None:
    readers = []
    for path in [PROJECT_ROOT / "__main__.py", *(PROJECT_ROOT / "components").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "Config":
                readers.append(path.name)
    assert readers == ["config.py"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_files_set_only_declared_keys(stack: str) -> None:
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    keys = {key.split(":", 1)[1] for key in document["config"] if key.startswith("lakehouse:")}
    assert keys <= set(declared_keys())
    # A secret is committed only as `pulumi config set --secret` writes it: encrypted, never in clear text.
    for key in declared_keys().values():
        value = document["config"].get(f"lakehouse:{key.name}")
        if key.secret and value is not None:
            assert isinstance(value, dict) and set(value) == {"secure"}, f"{key.name} is in clear text"


def test_a_valid_stack_loads(configure: Configure) -> None:
    configure(stack_config("prod"))
    config = load_stack_config("lakehouse", "prod")
    assert config.spark[Layer.SILVER].workers == 10
    assert config.orchestration.schedule == "cron(30 2 * * ? *)"
    assert config.storage.deletion_protection is True
    assert config.source.settings.page_size == 1000


def test_missing_and_wrong_values_are_reported_together_naming_each_key(configure: Configure) -> None:
    config = stack_config("dev")
    del config["lakehouse:sourceBaseUrl"]
    config.update(
        {
            "lakehouse:silverWorkers": "1",
            "lakehouse:glueFlex": "maybe",
            "lakehouse:logRetentionDays": "10",
            "lakehouse:sourcePageSize": "0",
            "lakehouse:glueWorkerType": "G.3X",
            "lakehouse:schedule": "daily",
            "lakehouse:silverWorker": "3",
        }
    )
    problems = _problems(configure, config)
    keys = [problem.split(":")[1] for problem in problems]
    assert sorted(keys) == sorted(
        [
            "sourceBaseUrl",
            "silverWorkers",
            "glueFlex",
            "logRetentionDays",
            "sourcePageSize",
            "glueWorkerType",
            "schedule",
            "silverWorker",
        ]
    )
    by_key = dict(zip(keys, problems, strict=True))
    assert "pulumi config set sourceBaseUrl" in by_key["sourceBaseUrl"]
    assert "at least 2; got 1" in by_key["silverWorkers"]
    assert "page size must be between 1 and 10000" in by_key["sourcePageSize"]
    assert "not a key of this project" in by_key["silverWorker"]


def test_a_missing_token_says_how_to_set_it_as_a_secret(configure: Configure) -> None:
    config = stack_config("dev")
    del config[TOKEN_KEY]
    (problem,) = _problems(configure, config)
    assert problem.startswith("lakehouse:sourceApiToken:")
    assert "pulumi config set --secret sourceApiToken" in problem


def test_a_protected_stack_cannot_force_destroy(configure: Configure) -> None:
    config = {**stack_config("prod"), "lakehouse:forceDestroy": "true"}
    (problem,) = _problems(configure, config)
    assert problem.startswith("lakehouse:forceDestroy:")


def test_pulumi_yaml_runs_the_program_in_the_project_virtual_environment() -> None:
    project = yaml.safe_load(Path(PROJECT_ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))
    assert project["name"] == "lakehouse"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_the_deploy_guide_describes_every_key() -> None:
    guide = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in declared_keys() if f"| `{name}` |" not in guide]
    assert not missing
    assert "pulumi config set --secret sourceApiToken" in guide


@pytest.mark.parametrize("worker_type", ["G.4X", "G.8X", "R.1X"])
def test_flex_with_a_worker_type_flex_cannot_run_on_is_refused_naming_both_keys(
    configure: Configure, worker_type: str
) -> None:
    config = {**stack_config("dev"), "lakehouse:glueFlex": "true", "lakehouse:glueWorkerType": worker_type}
    (problem,) = _problems(configure, config)
    assert problem.startswith("lakehouse:glueFlex:")
    assert "glueWorkerType G.1X or G.2X" in problem
    assert repr(worker_type) in problem


@pytest.mark.parametrize("worker_type", ["G.1X", "G.2X"])
def test_flex_runs_on_g1x_and_g2x(configure: Configure, worker_type: str) -> None:
    configure({**stack_config("dev"), "lakehouse:glueFlex": "true", "lakehouse:glueWorkerType": worker_type})
    spark = load_stack_config("lakehouse", "dev").spark
    assert {(sizing.flex, sizing.worker_type) for sizing in spark.values()} == {(True, worker_type)}


def test_any_worker_type_runs_without_flex(configure: Configure) -> None:
    configure({**stack_config("prod"), "lakehouse:glueFlex": "false", "lakehouse:glueWorkerType": "G.8X"})
    assert load_stack_config("lakehouse", "prod").spark[Layer.GOLD].worker_type == "G.8X"


def test_the_ingestion_cap_defaults_to_the_pipelines_own_and_is_bounded(configure: Configure) -> None:
    assert BRONZE.repeat is not None
    assert declared_keys()["ingestMaxInvocations"].default == BRONZE.repeat.max_runs
    configure(stack_config("dev"))
    assert load_stack_config("lakehouse", "dev").orchestration.ingest_max_invocations == 5
    for wrong in ("0", "1000"):
        (problem,) = _problems(configure, {**stack_config("dev"), "lakehouse:ingestMaxInvocations": wrong})
        assert problem.startswith("lakehouse:ingestMaxInvocations: must be between 1 and 999")


def test_alarm_bounds_are_read_and_a_step_the_pipeline_lacks_is_refused(configure: Configure) -> None:
    configure(stack_config("prod"))
    monitoring = load_stack_config("lakehouse", "prod").monitoring
    assert dict(monitoring.duration_minutes) == {"Silver": 120, "Gold": 60}
    assert (monitoring.duration_percent, monitoring.freshness_hours, monitoring.quarantine_percent) == (
        80,
        26,
        5,
    )
    wrong = {
        "lakehouse:alarmDurationMinutes": "Silver=45, Ingest=5, Gold=0",
        "lakehouse:alarmFreshnessHours": "169",
    }
    problems = _problems(configure, {**stack_config("dev"), **wrong})
    assert [problem.split(":")[1] for problem in problems] == [
        "alarmDurationMinutes",
        "alarmDurationMinutes",
        "alarmFreshnessHours",
    ]
    assert "got 'Ingest=5'" in problems[0] and "Bronze, Silver, Gold" in problems[0]
    assert "got 'Gold=0'" in problems[1]
    assert "between 1 and 168" in problems[2]


def test_gold_refreshes_in_full_unless_the_stack_asks_for_incremental(configure: Configure) -> None:
    assert declared_keys()["goldRefresh"].default == "full"
    configure(stack_config("dev"))
    assert load_stack_config("lakehouse", "dev").orchestration.gold_refresh == "full"
    configure({**stack_config("dev"), "lakehouse:goldRefresh": "incremental"})
    assert load_stack_config("lakehouse", "dev").orchestration.gold_refresh == "incremental"
    (problem,) = _problems(configure, {**stack_config("dev"), "lakehouse:goldRefresh": "partial"})
    assert problem == "lakehouse:goldRefresh: must be one of full, incremental; got 'partial'"


def test_the_audit_defaults_are_the_local_runs_own() -> None:
    keys = declared_keys()
    for field in fields(AuditThresholds):
        # Pulumi.yaml declares the percentage with decimals as a string ("5").
        declared = keys[audit_key(field.name)].default
        assert float(declared) == getattr(AuditThresholds(), field.name), field.name


def test_the_audit_thresholds_reach_the_config_and_a_wrong_one_is_refused_naming_its_key(
    configure: Configure,
) -> None:
    configure({**stack_config("dev"), "lakehouse:auditMaxQuarantinePercent": "2"})
    assert load_stack_config("lakehouse", "dev").audits == AuditThresholds(max_quarantine_percent=2)
    configure({**stack_config("dev"), "lakehouse:auditMaxQuarantinePercent": "0.5"})
    assert load_stack_config("lakehouse", "dev").audits == AuditThresholds(max_quarantine_percent=0.5)
    for wrong in ("101", "-1", "nan", "five"):
        config = {**stack_config("dev"), "lakehouse:auditMaxQuarantinePercent": wrong}
        (problem,) = _problems(configure, config)
        assert problem == (
            "lakehouse:auditMaxQuarantinePercent: must be a number from 0 to 100 (decimals allowed); "
            f"got {wrong!r}"
        )
