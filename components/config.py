"""Stack configuration: every key is read and validated here, once, before any resource is declared.

The keys, their types and defaults are declared in Pulumi.yaml (the Pulumi CLI applies those defaults; this
module applies them too, so the program behaves the same under test mocks). All problems are collected and
reported together, one line per key, so a user fixes their stack in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pulumi
import yaml
from pulumi.runtime.config import CONFIG, get_config_env, get_config_secret_keys_env, is_config_secret

from components.hardened_bucket import Transition
from components.ingest_function import FunctionSizing
from components.spark_job import SparkSizing
from etl.audit.checks import AuditThresholds, parse_percentage
from etl.bronze.settings import (
    SOURCE_ENV,
    SettingsError,
    SourceSettings,
)
from etl.pipeline import GOLD_REFRESH_MODES, MAX_ITERATION, PIPELINE
from etl.tables import Layer

PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"

# Values AWS accepts; a wrong one would otherwise surface only as an API error halfway through `pulumi up`.
LOG_RETENTION_DAYS = tuple(
    int(days)
    for days in "1 3 5 7 14 30 60 90 120 150 180 365 400 545 731 1096 1827 2192 2557 2922 3288 3653".split()
)
LAMBDA_LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
STATE_MACHINE_LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")
# Glue Spark worker types (G.025X is for streaming jobs only).
GLUE_WORKER_TYPES = ("G.1X", "G.2X", "G.4X", "G.8X", "G.12X", "G.16X", "R.1X", "R.2X", "R.4X", "R.8X")
# The FLEX execution class runs only on these; CreateJob refuses FLEX with any other worker type.
FLEX_WORKER_TYPES = ("G.1X", "G.2X")
# Classes that keep objects readable without a restore: Spark and the Silver job read old data at any time.
STORAGE_CLASSES = ("STANDARD_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
SCHEDULE_EXPRESSION = re.compile(r"(cron|rate|at)\(.+\)")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Principals Lake Formation can grant to: IAM roles and users, by ARN.
IAM_PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/\S+")
# Athena refuses a per-query cutoff below 10 MB.
MIN_BYTES_SCANNED_CUTOFF_MB = 10
# A placeholder that passes the source checks, so each source key is checked on its own.
_PLACEHOLDER_URL = "https://source.invalid"

T = TypeVar("T")


class ConfigError(pulumi.RunError):
    """The stack's configuration is missing a key or has a value the program cannot use."""


@dataclass(frozen=True)
class DeclaredKey:
    """A configuration key as Pulumi.yaml declares it."""

    name: str
    type: str
    description: str
    default: Any = None
    has_default: bool = False
    secret: bool = False


def declared_keys(project_file: Path = PROJECT_FILE) -> dict[str, DeclaredKey]:
    """The keys Pulumi.yaml declares for this project, by name (without the project namespace)."""
    document = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    return {
        name: DeclaredKey(
            name=name,
            type=spec["type"],
            description=spec.get("description", ""),
            default=spec.get("default"),
            has_default="default" in spec,
            secret=bool(spec.get("secret", False)),
        )
        for name, spec in document["config"].items()
    }


def source_key(field_name: str) -> str:
    """The configuration key of a SourceSettings field: base_url -> sourceBaseUrl."""
    return "source" + "".join(part.capitalize() for part in field_name.split("_"))


@dataclass(frozen=True)
class SourceConfig:
    """Where the ingestion reads from, and the token it sends."""

    settings: SourceSettings
    token: pulumi.Output[str]


@dataclass(frozen=True)
class OrchestrationConfig:
    schedule: str | None
    schedule_timezone: str
    log_level: str
    alarm_email: str | None
    dataset_concurrency: int = 0  # dataset branches at once; 0: all
    # Runs of the function step per dataset and execution, each bounded by its timeout.
    ingest_max_invocations: int = 1
    # How the Gold job refreshes a table whose Silver input changed (etl.pipeline.GOLD_REFRESH_MODES).
    gold_refresh: str = "full"


@dataclass(frozen=True)
class StorageConfig:
    noncurrent_version_days: int
    warehouse_noncurrent_version_days: int
    transitions: Mapping[Layer, Transition | None]
    access_logging: bool
    access_log_retention_days: int
    force_destroy: bool
    deletion_protection: bool
    deletion_window_days: int
    log_retention_days: int


@dataclass(frozen=True)
class AnalyticsConfig:
    """The Athena query layer: what one query may scan, how long results stay, Lake Formation or not."""

    bytes_scanned_cutoff_mb: int
    results_retention_days: int
    lake_formation: bool
    # IAM principals granted SELECT on Gold through Lake Formation (with lake_formation only).
    lake_formation_readers: tuple[str, ...]


@dataclass(frozen=True)
class BudgetConfig:
    """A monthly cost budget that e-mails `email` when actual cost passes `threshold_percent` of it."""

    monthly_usd: int
    threshold_percent: int
    email: str


@dataclass(frozen=True)
class MonitoringConfig:
    """The bounds of the alarms declared from the pipeline (components/monitoring.py)."""

    # A step's run alarms past this share of its timeout, unless duration_minutes names the step.
    duration_percent: int
    duration_minutes: Mapping[str, int]  # step name -> minutes
    freshness_hours: int  # no succeeded execution in this many hours alarms
    quarantine_percent: int  # a dataset's run quarantining more than this share of its records alarms


def audit_key(field_name: str) -> str:
    """The key of an AuditThresholds field: max_quarantine_percent -> auditMaxQuarantinePercent."""
    return "audit" + "".join(part.capitalize() for part in field_name.split("_"))


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    source: SourceConfig
    function: FunctionSizing
    spark: Mapping[Layer, SparkSizing]  # each Spark step's, by the layer it writes
    orchestration: OrchestrationConfig
    storage: StorageConfig
    analytics: AnalyticsConfig
    budget: BudgetConfig | None  # None: no budget
    monitoring: MonitoringConfig
    # The bounds of the audits a run's branch passes before main moves (etl/audit/checks.py).
    audits: AuditThresholds = field(default_factory=AuditThresholds)


class _Reader:
    """Reads declared keys with their Pulumi.yaml defaults, collecting problems instead of stopping."""

    def __init__(self, project: str, keys: Mapping[str, DeclaredKey]) -> None:
        self.project = project
        self.keys = keys
        self.config = pulumi.Config(project)
        self.problems: list[str] = []

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.project}:{name}: {message}")

    def _raw(self, name: str) -> str | None:
        key = self.keys.get(name)
        if key is None:
            raise KeyError(f"{name} is not declared in Pulumi.yaml; declare it there first")
        value = self.config.get(name)
        if value is None and key.has_default:
            value = _as_config_string(key.default)
        if value is None:
            self.problem(name, f"missing. {key.description} Set it with `pulumi config set {name} <value>`.")
        return value

    def string(self, name: str, choices: tuple[str, ...] = (), fallback: str = "") -> str:
        value = self._raw(name)
        if value is None:
            return fallback
        if choices and value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return minimum or 0
        try:
            value = int(raw)
        except ValueError:
            self.problem(name, f"must be a whole number; got {raw!r}")
            return minimum or 0
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.problem(name, f"must be {bounds}; got {value}")
        return value

    def percentage(self, name: str) -> float:
        """A number from 0 to 100, decimals allowed (declared as a string in Pulumi.yaml)."""
        raw = self._raw(name)
        if raw is None:
            return 0.0
        try:
            return parse_percentage(raw)
        except ValueError as error:
            self.problem(name, str(error))
            return 0.0

    def boolean(self, name: str) -> bool:
        raw = self._raw(name)
        if raw is None:
            return False
        if raw.lower() not in ("true", "false"):
            self.problem(name, f"must be true or false; got {raw!r}")
        return raw.lower() == "true"

    def secret(self, name: str) -> pulumi.Output[str]:
        value = self.config.get_secret(name)
        if value is None:
            self.problem(
                name,
                f"missing: set it with `pulumi config set --secret {name} <value>` (and commit the stack "
                "file, which then holds it encrypted, for CI to deploy)",
            )
            return pulumi.Output.secret("")
        full_name = f"{self.project}:{name}"
        if not (is_config_secret(full_name) or full_name in get_config_secret_keys_env()):
            # A warning, not an error: the value still reaches AWS only as a secret (see Pipeline).
            pulumi.log.warn(f"{full_name} is stored in plain text: set it with `pulumi config set --secret`")
        return value

    def has_problem(self, *names: str) -> bool:
        prefixes = tuple(f"{self.project}:{name}:" for name in names)
        return any(problem.startswith(prefixes) for problem in self.problems)

    def check(self, name: str, condition: bool, message: str) -> None:
        if not condition:
            self.problem(name, message)

    def undeclared(self) -> None:
        """Report keys set in the stack that Pulumi.yaml does not declare (usually a typo)."""
        prefix = f"{self.project}:"
        configured = {*CONFIG.get(), *get_config_env()}
        for full_name in sorted(configured):
            if full_name.startswith(prefix) and full_name[len(prefix) :] not in self.keys:
                self.problem(full_name[len(prefix) :], "is not a key of this project (see Pulumi.yaml)")


def _as_config_string(value: Any) -> str:
    """A Pulumi.yaml default as the string the CLI would pass (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_stack_config(project: str | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the whole stack configuration; raise one ConfigError listing every problem."""
    project = project or pulumi.get_project()
    reader = _Reader(project, declared_keys())
    reader.undeclared()
    config = StackConfig(
        project=project,
        stack=stack or pulumi.get_stack(),
        source=_read_source(reader),
        function=FunctionSizing(
            timeout_seconds=reader.integer("ingestTimeoutSeconds", 1, 900),
            memory_mb=reader.integer("ingestMemoryMb", 128, 10240),
            log_level=reader.string("logLevel", LAMBDA_LOG_LEVELS),
        ),
        spark=_read_spark(reader),
        orchestration=_read_orchestration(reader),
        storage=_read_storage(reader),
        analytics=_read_analytics(reader),
        budget=_read_budget(reader),
        monitoring=_read_monitoring(reader),
        audits=_read_audits(reader),
    )
    if reader.problems:
        raise ConfigError(
            f"The configuration of stack {config.stack!r} has {len(reader.problems)} problem(s):\n  "
            + "\n  ".join(reader.problems)
        )
    return config


def _read_source(reader: _Reader) -> SourceConfig:
    types = {f.name: str(f.type) for f in fields(SourceSettings)}
    values: dict[str, Any] = {}
    for field_name in SOURCE_ENV:
        key = source_key(field_name)
        if types[field_name] in ("int", "float"):
            values[field_name] = reader.integer(key)
        else:
            values[field_name] = reader.string(key)
    # Each value is checked by the ingestion's own rules, one at a time, so the message names the key.
    for field_name, value in values.items():
        if not reader.has_problem(source_key(field_name)):
            _check_with_ingestion(reader, source_key(field_name), partial(_source_with, field_name, value))
    settings = None
    if not reader.has_problem(*map(source_key, values)):
        # Rules that combine several values (none today) would report here.
        settings = _check_with_ingestion(reader, "source", lambda: SourceSettings(**values))
    return SourceConfig(
        settings=settings or SourceSettings(base_url=_PLACEHOLDER_URL),
        token=reader.secret("sourceApiToken"),
    )


def _source_with(field_name: str, value: Any) -> SourceSettings:
    return SourceSettings(**{"base_url": _PLACEHOLDER_URL, field_name: value})


def _check_with_ingestion(reader: _Reader, name: str, build: Callable[[], T]) -> T | None:
    try:
        return build()
    except SettingsError as e:
        reader.problem(name, str(e))
        return None


def _read_spark(reader: _Reader) -> Mapping[Layer, SparkSizing]:
    worker_type = reader.string("glueWorkerType", GLUE_WORKER_TYPES)
    flex = reader.boolean("glueFlex")
    if not reader.has_problem("glueWorkerType", "glueFlex"):
        reader.check(
            "glueFlex",
            not flex or worker_type in FLEX_WORKER_TYPES,
            f"true needs glueWorkerType {' or '.join(FLEX_WORKER_TYPES)} (FLEX runs on no other worker "
            f"type); got glueWorkerType {worker_type!r}: change glueWorkerType or set glueFlex to false",
        )
    timeout_minutes = reader.integer("glueTimeoutMinutes", 1, 2880)
    return MappingProxyType(
        {
            layer: SparkSizing(worker_type, reader.integer(f"{layer.value}Workers", 2), flex, timeout_minutes)
            for layer in (Layer.SILVER, Layer.GOLD)
        }
    )


def _read_orchestration(reader: _Reader) -> OrchestrationConfig:
    schedule = reader.string("schedule").strip()
    reader.check(
        "schedule",
        not schedule or SCHEDULE_EXPRESSION.fullmatch(schedule) is not None,
        f"must be a cron(...), rate(...) or at(...) expression, or empty for no schedule; got {schedule!r}",
    )
    alarm_email = reader.string("alarmEmail").strip()
    reader.check(
        "alarmEmail",
        not alarm_email or EMAIL.fullmatch(alarm_email) is not None,
        f"must be an e-mail address, or empty for none; got {alarm_email!r}",
    )
    return OrchestrationConfig(
        schedule=schedule or None,
        schedule_timezone=reader.string("scheduleTimezone"),
        log_level=reader.string("stateMachineLogLevel", STATE_MACHINE_LOG_LEVELS),
        alarm_email=alarm_email or None,
        dataset_concurrency=reader.integer("datasetConcurrency", 0, 100),
        ingest_max_invocations=reader.integer("ingestMaxInvocations", 1, MAX_ITERATION),
        gold_refresh=reader.string("goldRefresh", GOLD_REFRESH_MODES),
    )


def _read_storage(reader: _Reader) -> StorageConfig:
    transitions: dict[Layer, Transition | None] = {}
    for layer in Layer:
        days = reader.integer(f"{layer.value}TransitionDays", 0)
        storage_class = reader.string(f"{layer.value}StorageClass", STORAGE_CLASSES)
        # S3 refuses a move to STANDARD_IA earlier than 30 days after creation.
        reader.check(
            f"{layer.value}TransitionDays",
            not (storage_class == "STANDARD_IA" and 0 < days < 30),
            f"must be at least 30 for STANDARD_IA; got {days}",
        )
        transitions[layer] = Transition(days, storage_class) if days > 0 else None
    force_destroy = reader.boolean("forceDestroy")
    deletion_protection = reader.boolean("deletionProtection")
    reader.check(
        "forceDestroy",
        not (force_destroy and deletion_protection),
        "cannot be true while deletionProtection is true: a protected stack never empties its buckets",
    )
    retention = reader.integer("logRetentionDays")
    reader.check(
        "logRetentionDays",
        retention in LOG_RETENTION_DAYS,
        f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}; got {retention}",
    )
    return StorageConfig(
        noncurrent_version_days=reader.integer("noncurrentVersionDays", 1),
        warehouse_noncurrent_version_days=reader.integer("warehouseNoncurrentVersionDays", 1),
        transitions=MappingProxyType(transitions),
        access_logging=reader.boolean("accessLogging"),
        access_log_retention_days=reader.integer("accessLogRetentionDays", 1),
        force_destroy=force_destroy,
        deletion_protection=deletion_protection,
        deletion_window_days=reader.integer("deletionWindowDays", 7, 30),
        log_retention_days=retention,
    )


def _read_analytics(reader: _Reader) -> AnalyticsConfig:
    lake_formation = reader.boolean("lakeFormation")
    readers = tuple(arn.strip() for arn in reader.string("lakeFormationReaders").split(",") if arn.strip())
    wrong = [arn for arn in readers if IAM_PRINCIPAL_ARN.fullmatch(arn) is None]
    reader.check(
        "lakeFormationReaders",
        not wrong,
        f"must be IAM role or user ARNs separated by commas; got {', '.join(map(repr, wrong))}",
    )
    reader.check(
        "lakeFormationReaders",
        lake_formation or not readers,
        "grants only in Lake Formation mode: set lakeFormation to true, or leave lakeFormationReaders empty",
    )
    return AnalyticsConfig(
        bytes_scanned_cutoff_mb=reader.integer("athenaBytesScannedCutoffMb", MIN_BYTES_SCANNED_CUTOFF_MB),
        results_retention_days=reader.integer("athenaResultsRetentionDays", 1),
        lake_formation=lake_formation,
        lake_formation_readers=readers,
    )


def _read_budget(reader: _Reader) -> BudgetConfig | None:
    monthly_usd = reader.integer("budgetMonthlyUsd", 0)
    threshold_percent = reader.integer("budgetThresholdPercent", 1, 1000)
    own_email = reader.string("budgetEmail").strip()
    reader.check(
        "budgetEmail",
        not own_email or EMAIL.fullmatch(own_email) is not None,
        f"must be an e-mail address, or empty for alarmEmail; got {own_email!r}",
    )
    email = own_email or reader.string("alarmEmail").strip()
    if monthly_usd == 0 or reader.has_problem("budgetMonthlyUsd"):
        return None
    reader.check(
        "budgetEmail",
        bool(email),
        f"missing: the budget of {monthly_usd} USD needs an e-mail address to warn; set budgetEmail (or "
        "alarmEmail), or set budgetMonthlyUsd to 0 for no budget",
    )
    return BudgetConfig(monthly_usd=monthly_usd, threshold_percent=threshold_percent, email=email)


# An alarm looks back at most seven days (its periods times their number).
MAX_FRESHNESS_HOURS = 7 * 24


def _read_monitoring(reader: _Reader) -> MonitoringConfig:
    minutes: dict[str, int] = {}
    steps = [step.name for step in PIPELINE.steps]
    for entry in filter(None, (part.strip() for part in reader.string("alarmDurationMinutes").split(","))):
        step, _, value = (text.strip() for text in entry.partition("="))
        if step not in steps or not value.isdigit() or int(value) < 1:
            reader.problem(
                "alarmDurationMinutes",
                f"must be step=minutes pairs separated by commas, with steps among {', '.join(steps)} and "
                f"whole minutes of at least 1; got {entry!r}",
            )
            continue
        minutes[step] = int(value)
    return MonitoringConfig(
        duration_percent=reader.integer("alarmDurationPercent", 1, 100),
        duration_minutes=MappingProxyType(minutes),
        freshness_hours=reader.integer("alarmFreshnessHours", 1, MAX_FRESHNESS_HOURS),
        quarantine_percent=reader.integer("alarmQuarantinePercent", 0, 100),
    )


def _read_audits(reader: _Reader) -> AuditThresholds:
    values: dict[str, Any] = {
        f.name: reader.percentage(audit_key(f.name))
        if f.name == "max_quarantine_percent"
        else reader.integer(audit_key(f.name), 0)
        for f in fields(AuditThresholds)
    }
    return AuditThresholds(**values) if not reader.has_problem(*map(audit_key, values)) else AuditThresholds()
