"""The declarations: found by name, their rules as the README states them, the README's table list."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from etl import registry
from etl.silver.rules import Rejected, Validator

README = Path(__file__).parent.parent / "README.md"
CUSTOMER = {
    "customer_id": "C1",
    "name": "Ada",
    "email": "ada@example.com",
    "country": "de",
    "segment": "Business",
    "created_at": "2026-01-01T10:00:00+01:00",
    "updated_at": "2026-01-02T10:00:00Z",
}


def customer(**changes: object) -> str:
    fields = {**CUSTOMER, **changes}
    return json.dumps({key: value for key, value in fields.items() if value is not ...})


def test_the_declared_datasets_and_gold_models() -> None:
    assert [d.name for d in registry.datasets()] == ["customers", "orders"]
    assert [m.table.name for m in registry.gold_models()] == [
        "customer_summary",
        "daily_sales",
        "sales_by_country",
    ]
    assert registry.dataset("customers").source.path == "/v1/customers"


def test_an_unknown_dataset_is_refused_in_one_line_naming_the_declared_ones() -> None:
    with pytest.raises(
        registry.UnknownDataset, match=r"no dataset 'products' .*\(declared: customers, orders\)"
    ):
        registry.dataset("products")


def test_a_customer_is_typed_as_the_readme_says() -> None:
    validate = Validator(registry.dataset("customers"))
    assert validate(customer()) == (
        "C1",
        "Ada",
        "ada@example.com",
        "DE",
        "business",
        datetime(2026, 1, 1, 9, tzinfo=UTC),
        datetime(2026, 1, 2, 10, tzinfo=UTC),
    )
    assert validate(customer(email=...))[2] is None
    assert validate(customer(email=None))[2] is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"customer_id": ""}, "invalid_customer_id"),
        ({"customer_id": 7}, "invalid_customer_id"),
        ({"name": ...}, "missing_name"),
        ({"email": "a@b@c"}, "invalid_email"),
        ({"email": "@b"}, "invalid_email"),
        ({"email": "ab"}, "invalid_email"),
        ({"country": "DEU"}, "invalid_country"),
        ({"country": "D1"}, "invalid_country"),
        ({"country": "ÉS"}, "invalid_country"),
        ({"segment": "vip"}, "invalid_segment"),
        ({"updated_at": "2026-01-02T10:00:00"}, "invalid_updated_at"),
    ],
)
def test_a_customer_breaking_a_rule_gets_its_reason(changes: dict[str, object], reason: str) -> None:
    dataset = registry.dataset("customers")
    with pytest.raises(Rejected) as rejected:
        Validator(dataset)(customer(**changes))
    assert rejected.value.reason == reason
    assert reason in dataset.reasons


def test_the_readme_lists_every_declared_table_and_no_other() -> None:
    listed = re.findall(
        r"^\| `((?:silver|gold)\.[a-z_]+)` \|", README.read_text(encoding="utf-8"), re.MULTILINE
    )
    declared = [f"{table.layer.value}.{table.name}" for table in registry.all_tables()]
    assert sorted(listed) == sorted(declared)
