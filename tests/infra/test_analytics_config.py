"""The query layer's and the budget's keys: defaults, the alarm e-mail fallback, mistakes naming the key."""

from __future__ import annotations

from collections.abc import Iterator

import pulumi
import pytest

from components.config import AnalyticsConfig, BudgetConfig, ConfigError, load_stack_config
from tests.infra.stack_run import TOKEN_KEY, stack_config

NEW_KEYS = (
    "athenaBytesScannedCutoffMb",
    "athenaResultsRetentionDays",
    "lakeFormation",
    "lakeFormationReaders",
    "budgetMonthlyUsd",
    "budgetThresholdPercent",
    "budgetEmail",
)
ROLE = "arn:aws:iam::123456789012:role/analysts"


@pytest.fixture
def configure() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({}, [])


def _load(stack: str, **changes: str | None) -> tuple[AnalyticsConfig, BudgetConfig | None]:
    config = stack_config(stack)
    for key, value in changes.items():
        if value is None:
            config.pop(f"lakehouse:{key}", None)
        else:
            config[f"lakehouse:{key}"] = value
    pulumi.runtime.set_all_config(config, [TOKEN_KEY])
    loaded = load_stack_config("lakehouse", stack)
    return loaded.analytics, loaded.budget


def _problems(stack: str, **changes: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        _load(stack, **changes)
    return [line.strip() for line in str(raised.value).splitlines()[1:]]


def test_the_defaults_give_an_athena_layer_without_lake_formation_and_no_budget(configure: None) -> None:
    analytics, budget = _load("dev", **dict.fromkeys(NEW_KEYS))
    assert analytics == AnalyticsConfig(
        bytes_scanned_cutoff_mb=10240,
        results_retention_days=30,
        lake_formation=False,
        lake_formation_readers=(),
    )
    assert budget is None


def test_the_stacks_set_their_budgets_and_the_budget_falls_back_to_the_alarm_email(configure: None) -> None:
    assert _load("dev")[1] == BudgetConfig(
        monthly_usd=50, threshold_percent=80, email="data-oncall@example.com"
    )
    _, prod = _load("prod", alarmEmail="oncall@example.org")
    assert prod == BudgetConfig(monthly_usd=1000, threshold_percent=80, email="oncall@example.org")
    _, own = _load("prod", budgetEmail="finance@example.org")
    assert own is not None and own.email == "finance@example.org"


def test_lake_formation_readers_are_read_as_a_list(configure: None) -> None:
    user = "arn:aws:iam::123456789012:user/jane"
    analytics, _ = _load("dev", lakeFormation="true", lakeFormationReaders=f" {ROLE},{user} ,")
    assert analytics.lake_formation and analytics.lake_formation_readers == (ROLE, user)


@pytest.mark.parametrize(
    ("changes", "key", "says"),
    [
        ({"athenaBytesScannedCutoffMb": "5"}, "athenaBytesScannedCutoffMb", "at least 10"),
        ({"athenaResultsRetentionDays": "0"}, "athenaResultsRetentionDays", "at least 1"),
        ({"budgetThresholdPercent": "0"}, "budgetThresholdPercent", "between 1 and 1000"),
        ({"budgetMonthlyUsd": "-5"}, "budgetMonthlyUsd", "at least 0"),
        ({"budgetEmail": "finance"}, "budgetEmail", "must be an e-mail address"),
        ({"budgetEmail": ""}, "budgetEmail", "needs an e-mail address to warn"),
        ({"lakeFormationReaders": ROLE}, "lakeFormationReaders", "set lakeFormation to true"),
        (
            {"lakeFormation": "true", "lakeFormationReaders": f"{ROLE},analysts"},
            "lakeFormationReaders",
            "'analysts'",
        ),
    ],
)
def test_a_wrong_value_is_one_problem_naming_its_key(
    configure: None, changes: dict[str, str], key: str, says: str
) -> None:
    (problem,) = _problems("dev", **changes)
    assert problem.startswith(f"lakehouse:{key}:")
    assert says in problem
