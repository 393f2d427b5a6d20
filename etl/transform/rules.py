"""Validation and typing rules for one order record: plain Python, one stable reason code per rejection.

The rules need the record's JSON types (`123` and `"123"` are both valid order ids, but only a string is
a valid customer id), which Spark's JSON reader erases, so a record is checked here as parsed by Python's
json module. Rules are checked in the order of REASONS; the first that fails names the record's reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from etl.bronze import raw_bytes_of
from etl.json_nesting import MAX_NESTING, nesting_depth
from etl.tables import ORDER_STATUSES
from etl.timestamps import parse_rfc3339

# Stable reason codes, in the order the rules are checked.
REASONS = (
    "not_utf8",  # kept in Bronze as raw bytes (see etl/bronze.py)
    "too_deep",  # nests deeper than MAX_NESTING: parsing it could exhaust the stack
    "not_json",
    "duplicate_key",  # an object with a key twice: which value counts is ambiguous, so neither does
    "not_an_object",
    "missing_order_id",
    "invalid_order_id",
    "missing_customer_id",
    "invalid_customer_id",
    "missing_status",
    "invalid_status",
    "missing_amount",
    "invalid_amount",
    "negative_amount",
    "amount_out_of_range",
    "missing_currency",
    "invalid_currency",
    "missing_created_at",
    "invalid_created_at",
    "missing_updated_at",
    "invalid_updated_at",
    "check_failed",  # a rule raised an error of its own: a bug, but one record must not stop Silver
    # Checked on the typed order, against the start of the run that delivered it (etl/transform/orders.py).
    "future_updated_at",
)

BIGINT_MAX = 2**63 - 1
AMOUNT_LIMIT = Decimal("10000000000")  # DECIMAL(12,2) holds up to 9,999,999,999.99
CENT = Decimal("0.01")
_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_STATUSES = frozenset(ORDER_STATUSES)


@dataclass(frozen=True)
class Order:
    """A valid order, typed as Silver stores it."""

    order_id: int
    customer_id: str
    status: str
    amount: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    items: str | None  # the `items` value as compact JSON text


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _DuplicateKey(Exception):
    pass


def validate_order(line: str) -> Order:
    """The typed order in a Bronze line, or Rejected with the first rule it breaks."""
    text = _record_text(line)
    # Measured without recursion first: json.loads and compact_json recurse once per level.
    if nesting_depth(text) > MAX_NESTING:
        raise Rejected("too_deep")
    try:
        # Decimals straight from the JSON text: 0.1 stays 0.1, never a binary float.
        record = json.loads(text, parse_float=Decimal, object_pairs_hook=_without_duplicate_keys)
    except _DuplicateKey as e:
        raise Rejected("duplicate_key") from e
    except ValueError as e:
        raise Rejected("not_json") from e
    if not isinstance(record, dict):
        raise Rejected("not_an_object")
    items = record.get("items")
    return Order(
        order_id=_order_id(record.get("order_id")),
        customer_id=_customer_id(record.get("customer_id")),
        status=_status(record.get("status")),
        amount=_amount(record.get("amount")),
        currency=_currency(record.get("currency")),
        created_at=_timestamp(record.get("created_at"), "created_at"),
        updated_at=_timestamp(record.get("updated_at"), "updated_at"),
        items=None if items is None else compact_json(items),
    )


def _record_text(line: str) -> str:
    """The record's text: the line itself, or the bytes a raw-bytes line holds, decoded."""
    try:
        raw = raw_bytes_of(line)
    except ValueError as e:  # the line claims raw bytes but is not base64
        raise Rejected("not_json") from e
    if raw is None:
        return line
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected("not_utf8") from e


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _DuplicateKey
    return record


def _order_id(value: Any) -> int:
    if value is None:
        raise Rejected("missing_order_id")
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(BIGINT_MAX)):  # int() refuses over 4300 digits: check the length first
            raise Rejected("invalid_order_id")
        number = int(digits)
    else:
        raise Rejected("invalid_order_id")
    if not -BIGINT_MAX - 1 <= number <= BIGINT_MAX:
        raise Rejected("invalid_order_id")
    return number


def _customer_id(value: Any) -> str:
    if value is None:
        raise Rejected("missing_customer_id")
    if not isinstance(value, str) or value == "" or not _is_unicode(value):
        raise Rejected("invalid_customer_id")
    return value


def _status(value: Any) -> str:
    if value is None:
        raise Rejected("missing_status")
    if not isinstance(value, str) or value.lower() not in _STATUSES:
        raise Rejected("invalid_status")
    return value.lower()


def _amount(value: Any) -> Decimal:
    if value is None:
        raise Rejected("missing_amount")
    if isinstance(value, bool):
        raise Rejected("invalid_amount")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        amount = Decimal(value.strip())
    else:  # NaN and Infinity arrive as floats (parse_float does not see them)
        raise Rejected("invalid_amount")
    if not amount.is_finite():
        raise Rejected("invalid_amount")
    if amount < 0:
        raise Rejected("negative_amount")
    try:
        rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as e:  # too many digits to quantize: far out of range
        raise Rejected("amount_out_of_range") from e
    if rounded >= AMOUNT_LIMIT:
        raise Rejected("amount_out_of_range")
    return rounded


def _currency(value: Any) -> str:
    if value is None:
        raise Rejected("missing_currency")
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise Rejected("invalid_currency")
    return value.upper()


def _timestamp(value: Any, field: str) -> datetime:
    if value is None:
        raise Rejected(f"missing_{field}")
    instant = parse_rfc3339(value) if isinstance(value, str) else None
    if instant is None:
        raise Rejected(f"invalid_{field}")
    return instant


def compact_json(value: Any) -> str:
    """`value` as compact JSON, numbers written with the digits they were received with."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{compact_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(compact_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


def _is_unicode(text: str) -> bool:
    """False for text with lone surrogates (from escapes such as \\ud800): valid JSON, but not storable."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
