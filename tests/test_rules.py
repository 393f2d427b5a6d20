"""The order validation rules, one record at a time."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from datasets.orders import DATASET as ORDERS
from etl.bronze.layout import raw_bytes_line
from etl.json_nesting import MAX_NESTING
from etl.silver.rules import Rejected, Validator, _compact_json, compact_json

REASONS = ORDERS.reasons
_VALIDATE = Validator(ORDERS)


@dataclass(frozen=True)
class Order:
    order_id: int
    customer_id: str
    status: str
    amount: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    items: str | None


def validate_order(line: str) -> Order:
    return Order(*_VALIDATE(line))


VALID = {
    "order_id": 42,
    "customer_id": "C-1",
    "status": "paid",
    "amount": 12.5,
    "currency": "eur",
    "created_at": "2026-03-01T10:00:00+02:00",
    "updated_at": "2026-03-02T10:00:00Z",
}


def record(**changes: object) -> str:
    fields = {**VALID, **changes}
    return json.dumps({key: value for key, value in fields.items() if value is not ...})


def test_types_a_valid_record() -> None:
    assert validate_order(record(items=[{"sku": "A", "price": 1.10}], extra="ignored")) == Order(
        order_id=42,
        customer_id="C-1",
        status="paid",
        amount=Decimal("12.50"),
        currency="EUR",
        created_at=datetime(2026, 3, 1, 8, tzinfo=UTC),
        updated_at=datetime(2026, 3, 2, 10, tzinfo=UTC),
        items='[{"sku":"A","price":1.1}]',
    )


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"order_id": "0042"}, "order_id", 42),
        ({"order_id": 9223372036854775807}, "order_id", 9223372036854775807),
        ({"amount": "19.99"}, "amount", Decimal("19.99")),
        ({"amount": " 7 "}, "amount", Decimal("7.00")),
        ({"amount": 0}, "amount", Decimal("0.00")),
        ({"amount": 0.1}, "amount", Decimal("0.10")),
        ({"amount": 2.005}, "amount", Decimal("2.01")),  # half up, from the decimal text
        ({"amount": "1e3"}, "amount", Decimal("1000.00")),
        ({"amount": 9999999999.99}, "amount", Decimal("9999999999.99")),
        ({"currency": "uSd"}, "currency", "USD"),
        ({"status": "DELIVERED"}, "status", "delivered"),
        ({"status": "Refunded"}, "status", "refunded"),
        ({"items": ...}, "items", None),
        ({"customer_id": "   "}, "customer_id", "   "),  # non-empty, as the contract says
        ({"customer_id": "Zoë 北京"}, "customer_id", "Zoë 北京"),
    ],
)
def test_accepts_and_normalises(changes: dict[str, object], field: str, expected: object) -> None:
    assert getattr(validate_order(record(**changes)), field) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not_json"),
        ("", "not_json"),
        ('"a string"', "not_an_object"),
        ("[1, 2]", "not_an_object"),
        ("null", "not_an_object"),
        (record(order_id=...), "missing_order_id"),
        (record(order_id=None), "missing_order_id"),
        (record(order_id="A-1"), "invalid_order_id"),
        (record(order_id="-5"), "invalid_order_id"),
        (record(order_id=" 5"), "invalid_order_id"),
        (record(order_id="\u0665"), "invalid_order_id"),  # a non-ASCII digit
        (record(order_id=4.2), "invalid_order_id"),
        (record(order_id=True), "invalid_order_id"),
        (record(order_id=2**63), "invalid_order_id"),
        (record(customer_id=...), "missing_customer_id"),
        (record(customer_id=""), "invalid_customer_id"),
        (record(customer_id="bad\ud800"), "invalid_customer_id"),  # a lone surrogate: JSON, not storable
        (record(customer_id=17), "invalid_customer_id"),
        (record(status=...), "missing_status"),
        (record(status="lost"), "invalid_status"),
        (record(status=" paid"), "invalid_status"),
        (record(status=1), "invalid_status"),
        (record(amount=...), "missing_amount"),
        (record(amount="12,50"), "invalid_amount"),
        (record(amount="abc"), "invalid_amount"),
        (record(amount="NaN"), "invalid_amount"),
        (record(amount=True), "invalid_amount"),
        (record(amount=[1]), "invalid_amount"),
        (record(amount=-0.01), "negative_amount"),
        (record(amount="-3"), "negative_amount"),
        (record(amount=10000000000), "amount_out_of_range"),
        (record(amount=9999999999.995), "amount_out_of_range"),  # rounds up past the limit
        (record(amount="1e40"), "amount_out_of_range"),
        (record(currency=...), "missing_currency"),
        (record(currency="EURO"), "invalid_currency"),
        (record(currency="E1R"), "invalid_currency"),
        (record(currency="ÉUR"), "invalid_currency"),
        (record(created_at=...), "missing_created_at"),
        (record(created_at="2026-03-01"), "invalid_created_at"),
        (record(created_at=1700000000), "invalid_created_at"),
        (record(updated_at="2026-03-01T10:00:00"), "invalid_updated_at"),
        (record(updated_at="yesterday"), "invalid_updated_at"),
        (record(updated_at=...), "missing_updated_at"),
    ],
)
def test_rejects_with_one_stable_reason(text: str, reason: str) -> None:
    with pytest.raises(Rejected) as rejected:
        validate_order(text)
    assert rejected.value.reason == reason
    assert reason in REASONS


def test_items_keep_the_numbers_as_received() -> None:
    text = record().replace(
        '"amount": 12.5', '"amount": 12.5, "items": [{"p": 1e400, "q": 1.10, "big": 12345678901234567890.12}]'
    )
    assert validate_order(text).items == '[{"p":1E+400,"q":1.10,"big":12345678901234567890.12}]'


def test_nan_literal_is_an_invalid_amount() -> None:
    with pytest.raises(Rejected) as rejected:
        validate_order(record().replace('"amount": 12.5', '"amount": NaN'))
    assert rejected.value.reason == "invalid_amount"


def test_the_first_broken_rule_names_the_reason() -> None:
    with pytest.raises(Rejected) as rejected:
        validate_order(record(customer_id="", currency="EURO", status="lost"))
    assert rejected.value.reason == "invalid_customer_id"


def nested(levels: int) -> str:
    return record().replace('"amount": 12.5', '"amount": 12.5, "items": ' + "[" * levels + "]" * levels)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (raw_bytes_line(b'{"order_id": 1, "customer_id": "caf\xe9"}'), "not_utf8"),
        (raw_bytes_line(nested(MAX_NESTING).encode()), "too_deep"),
        (nested(MAX_NESTING), "too_deep"),  # kept as text by an older ingestion
        (nested(1_000), "too_deep"),  # RecursionError in json.loads without the check
        (nested(100_000), "too_deep"),
        (raw_bytes_line(b'{"order_id": 1 "x": 2}'), "not_json"),
        ("base64:not base64!", "not_json"),
        (record().replace('"order_id": 42', '"order_id": 42, "order_id": 43'), "duplicate_key"),
        (record(items=[{"sku": "A"}]).replace('"sku": "A"', '"sku": "A", "sku": "B"'), "duplicate_key"),
        (record(order_id="9" * 5000), "invalid_order_id"),  # int() refuses it with a ValueError
    ],
)
def test_records_that_cannot_be_parsed_safely_are_rejected_with_their_own_reason(
    line: str, reason: str
) -> None:
    with pytest.raises(Rejected) as rejected:
        validate_order(line)
    assert rejected.value.reason == reason
    assert reason in REASONS


def test_leading_zeros_of_any_length_are_a_valid_order_id() -> None:
    assert validate_order(record(order_id="0" * 5000 + "42")).order_id == 42


def test_a_raw_bytes_line_that_is_valid_utf8_is_checked_as_a_record() -> None:
    assert validate_order(raw_bytes_line(record().encode())).order_id == 42


def test_a_record_just_within_the_nesting_limit_is_accepted() -> None:
    assert validate_order(nested(MAX_NESTING - 1)).items == "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)


def test_the_quick_json_writer_writes_what_the_field_by_field_writer_writes() -> None:
    # compact_json hands values without Decimals to the json module's C encoder; _compact_json is the
    # reference (and the writer for values with Decimals).
    generate = random.Random(20261127)
    texts = ["", "a", "é", "日本", "\ud800", '"', "\\", "\n\t", "\x00", "💡", "/"]

    def value(depth: int) -> object:
        kind = generate.randrange(9 if depth < 4 else 6)
        if kind == 0:
            return generate.choice(texts) + generate.choice(texts)
        if kind == 1:
            return generate.choice([0, -1, 7, 2**63, -(2**80)])
        if kind == 2:
            return generate.choice([True, False, None])
        if kind in (3, 4, 5):
            return generate.choice(texts)
        if kind == 6:
            return [value(depth + 1) for _ in range(generate.randrange(4))]
        return {generate.choice(texts) + str(n): value(depth + 1) for n in range(generate.randrange(4))}

    for _ in range(2_000):
        written = value(0)
        assert compact_json(written) == _compact_json(written)
    with_decimals = {"p": Decimal("1.10"), "q": [Decimal("1E+400"), "é"]}
    assert compact_json(with_decimals) == '{"p":1.10,"q":[1E+400,"\\u00e9"]}'


def test_brackets_inside_strings_do_not_make_a_record_too_deep() -> None:
    # More brackets than the limit, but all in a string: the nesting is measured, not just counted.
    text = record().replace('"amount": 12.5', '"amount": 12.5, "items": ["' + "[{" * MAX_NESTING + '"]')
    assert validate_order(text).items == '["' + "[{" * MAX_NESTING + '"]'


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_json_field_holding_what_json_does_not_have_is_invalid(literal: str) -> None:
    # Python's json module reads these literals; the stored text must be JSON.
    text = record().replace('"amount": 12.5', f'"amount": 12.5, "items": [{{"price": {literal}}}]')
    with pytest.raises(Rejected) as rejected:
        validate_order(text)
    assert rejected.value.reason == "invalid_items"
