"""The audits a run's branch must pass before `main` moves (write-audit-publish), and their thresholds.

Audits are declared next to the tables they guard: a dataset's in datasets/<name>.py (`Dataset.audits`),
a Gold model's in datasets/gold/<table>.py (`GoldModel.audits`). Their thresholds are one set per
deployment (`AuditThresholds`): the stack config in AWS (Pulumi.yaml, `audit*` keys), the same defaults
locally; the Audit job receives them as `--name value` arguments. Plain Python, no Spark or Pulumi: the
Audit job (etl/audit/job.py) measures them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar


def _count(text: str) -> int:
    """A whole threshold of 0 or more; anything else is argparse's one-line error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more; got {text}")
    return value


def parse_percentage(text: str) -> float:
    """A percentage from 0 to 100, decimals allowed (the job's option and the stack config key); anything
    else is a ValueError saying so."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 100:  # NaN too
        raise ValueError(f"must be a number from 0 to 100 (decimals allowed); got {text!r}")
    return value


def _percentage(text: str) -> float:
    """parse_percentage for argparse: anything else is argparse's one-line error."""
    try:
        return parse_percentage(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class AuditThresholds:
    """The bounds every audit is held to; each field is a job argument and a stack config key."""

    # Each field's help is what `lakehouse run --help` says of its option.
    min_records: int = field(
        default=0, metadata={"help": "records each dataset's ingestion must deliver in a run; 0: none"}
    )
    empty_after_runs: int = field(
        default=3,
        metadata={
            "help": "an empty run after N non-empty ones in a row fails (the source went quiet); 0: never"
        },
    )
    max_quarantine_percent: float = field(
        default=5,
        metadata={
            "type": _percentage,
            "metavar": "PERCENT",
            "help": (
                "records the run newly quarantined, as a percentage of those it delivered; decimals allowed"
            ),
        },
    )
    # Gold aggregates an upsert-only Silver, so its tables do not shrink on their own; they grow freely (a
    # backfill, a first load), and revenue that appears twice is caught by the sums.
    max_row_drop_percent: int = field(
        default=10,
        metadata={
            "metavar": "PERCENT",
            "help": "rows a Gold table may lose in one run, as a percentage of its published rows",
        },
    )
    # 0 by default: the bundled sample's records are dated 2024 and 2025.
    max_staleness_hours: int = field(
        default=0,
        metadata={
            "metavar": "HOURS",
            "help": "how old the newest version in a Silver table may be at the audit; 0: not checked",
        },
    )

    def __post_init__(self) -> None:
        for name in ("min_records", "empty_after_runs", "max_row_drop_percent", "max_staleness_hours"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if not 0 <= self.max_quarantine_percent <= 100:
            raise ValueError(
                f"max_quarantine_percent must be between 0 and 100, got {self.max_quarantine_percent}"
            )

    def arguments(self) -> dict[str, str]:
        """The thresholds as the Audit job's `--name value` arguments."""
        return {argument_name(f.name): threshold_text(getattr(self, f.name)) for f in fields(self)}

    def options_changed(self) -> str:
        """The thresholds that differ from the defaults as command-line options (" --audit-... N"), for a
        command that must measure as this run did."""
        defaults = AuditThresholds().arguments()
        return "".join(
            f" {name} {value}" for name, value in self.arguments().items() if value != defaults[name]
        )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        defaults = cls()
        thresholds = parser.add_argument_group(
            "audit thresholds",
            "what a run's branch must meet to be published (README: Write, audit, publish)",
        )
        for f in fields(cls):
            parse: Callable[[str], float] = f.metadata.get("type", _count)  # a whole number unless said
            thresholds.add_argument(
                argument_name(f.name),
                dest=f.name,
                type=parse,
                default=getattr(defaults, f.name),
                metavar=f.metadata.get("metavar", "N"),
                help=f"{f.metadata['help']} (default {getattr(defaults, f.name)})",
            )

    @classmethod
    def from_arguments(cls, arguments: argparse.Namespace) -> AuditThresholds:
        return cls(**{f.name: getattr(arguments, f.name) for f in fields(cls)})


def argument_name(field_name: str) -> str:
    """min_records -> --audit-min-records."""
    return "--audit-" + field_name.replace("_", "-")


def threshold_text(value: float) -> str:
    """A threshold as arguments and messages write it, every decimal kept: 5 -> "5", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def shown_percent(rate: float, bound: float) -> float:
    """`rate` rounded to two decimals, or to as many more (up to six) as it takes to be on the same side
    of `bound` as the rate itself: 0.254 against 0.25 shows 0.254, not a failing 0.25."""
    for digits in range(2, 7):
        shown = round(rate, digits)
        if (shown <= bound) == (rate <= bound):
            return shown
    return rate


@dataclass(frozen=True)
class Audit:
    """One check of the branch; `name` identifies it in results, metrics and the failure line."""

    name: ClassVar[str] = "audit"
    # The AuditThresholds field holding its bound.
    threshold: ClassVar[str] = ""


@dataclass(frozen=True)
class RecordsIngested(Audit):
    """The run delivered at least `min_records` records of the dataset, and is not an empty run after
    `empty_after_runs` non-empty ones (counted from silver.ingestion_runs)."""

    name: ClassVar[str] = "records_ingested"
    threshold: ClassVar[str] = "min_records"


@dataclass(frozen=True)
class QuarantineRate(Audit):
    """At most `max_quarantine_percent` of the run's records of the dataset went to quarantine."""

    name: ClassVar[str] = "quarantine_rate"
    threshold: ClassVar[str] = "max_quarantine_percent"


@dataclass(frozen=True)
class Freshness(Audit):
    """The newest value of `column` (the dataset's version column when None) is at most
    `max_staleness_hours` old."""

    name: ClassVar[str] = "freshness"
    threshold: ClassVar[str] = "max_staleness_hours"
    column: str | None = None


@dataclass(frozen=True)
class NoNullKeys(Audit):
    """No row of the Gold table has a null in any of `columns`."""

    name: ClassVar[str] = "no_null_keys"
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class SumMatchesSilver(Audit):
    """The sum of the Gold table's `column` equals `silver_sum`, an aggregate SQL expression over the
    dataset's Silver table (`dataset`): what the column derives from, computed independently."""

    name: ClassVar[str] = "sum_matches_silver"
    column: str = ""
    dataset: str = ""
    silver_sum: str = ""


@dataclass(frozen=True)
class RowCountDrop(Audit):
    """The Gold table lost at most `max_row_drop_percent` of its published rows (a table with no
    published rows yet passes)."""

    name: ClassVar[str] = "row_count_drop"
    threshold: ClassVar[str] = "max_row_drop_percent"


# What every dataset is audited for unless its declaration says otherwise.
DATASET_AUDITS: tuple[Audit, ...] = (RecordsIngested(), QuarantineRate(), Freshness())


# Why an audit was not measured (AuditResult.not_measured): its threshold switches it off.
SWITCHED_OFF = "switched off"


@dataclass(frozen=True)
class AuditResult:
    """What one audit measured on the branch."""

    audit: str
    table: str  # database.table
    value: float
    threshold: str  # the bound, as the failure line shows it, e.g. "<= 5%"
    passed: bool
    unit: str = ""  # after the value: "%", " h", " rows"
    detail: str = ""  # what the value is made of, e.g. "12 of 240 records quarantined"
    # Why the audit was not measured, e.g. SWITCHED_OFF; "" when it was. One not measured has no value
    # and holds nothing back (`passed`); it is shown and counted apart, never as passed.
    not_measured: str = ""

    def __post_init__(self) -> None:
        if self.not_measured and not self.passed:
            raise ValueError(f"{self.audit} on {self.table}: an audit not measured cannot fail")

    @property
    def verdict(self) -> str:
        """passed, FAILED or not measured."""
        if self.not_measured:
            return "not measured"
        return "passed" if self.passed else "FAILED"

    @property
    def measured(self) -> str:
        """The value as it reads, e.g. "1.33% (4 of 300 records this run)", or why there is none."""
        if self.not_measured:
            return self.not_measured
        unit = self.unit.removesuffix("s") if self.value == 1 and self.unit in PLURAL_UNITS else self.unit
        return f"{_number(self.value)}{unit}" + (f" ({self.detail})" if self.detail else "")

    def line(self) -> str:
        """One line naming the audit, the measured value and the threshold."""
        return f"{self.audit} on {self.table} {self.verdict}: {self.measured}, threshold {self.threshold}"


# Units written in the plural, and in the singular after 1: "1 record", "2 records".
PLURAL_UNITS = frozenset({" records", " rows", " Silver tables"})


def _number(value: float) -> str:
    """1,234 or 1.50, or the digits a value rounded finer than two decimals has (shown_percent)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if round(value, 2) == value else f"{value:,.6f}".rstrip("0")
