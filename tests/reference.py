"""A reference computation of Silver, quarantine and Gold, written from the rules in the README and
independently of etl/silver and etl/gold, for end-to-end comparisons. Plain Python, no Spark."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

STATUSES = {"placed", "paid", "shipped", "delivered", "cancelled", "refunded"}
SEGMENTS = {"consumer", "business", "enterprise"}
REVENUE = {"paid", "shipped", "delivered"}


@dataclass(frozen=True)
class Expected:
    silver: dict[
        int, tuple[Any, ...]
    ]  # order_id -> (customer_id, status, amount, currency, created, updated)
    quarantine: Counter[tuple[str, str]]  # (raw record, reason) -> 1: a record received again is kept once
    daily_sales: set[tuple[Any, ...]]
    customer_summary: set[tuple[Any, ...]]
    rejections: int = 0  # every rejected record of every run, as the ledger counts them
    # customer_id -> (name, email, country, segment, created, updated)
    customers: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    customer_quarantine: Counter[tuple[str, str]] = field(default_factory=Counter)
    sales_by_country: set[tuple[Any, ...]] = field(default_factory=set)


def timestamp(value: Any) -> datetime | None:
    """RFC 3339 date-time with a mandatory offset, by hand."""
    if not isinstance(value, str) or not value.isascii() or len(value) < 20 or value[10] not in "Tt":
        return None
    body, offset = value[:-1], timedelta(0)
    if value[-1] not in "Zz":
        sign, hours, minutes = value[-6], value[-5:-3], value[-2:]
        if sign not in "+-" or value[-3] != ":" or not (hours + minutes).isdigit() or int(hours) > 23:
            return None
        body = value[:-6]
        offset = timedelta(hours=int(hours), minutes=int(minutes)) * (1 if sign == "+" else -1)
    date_part, time_part = body[:10], body[11:]
    whole, _, fraction = time_part.partition(".")
    if len(whole) != 8 or (fraction and not fraction.isdigit()) or ("." in time_part and not fraction):
        return None
    try:
        parsed = datetime.strptime(f"{date_part} {whole}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return parsed.replace(microsecond=micros, tzinfo=timezone(offset)).astimezone(UTC)


def depth(text: str) -> int:
    """Deepest nesting of arrays and objects outside strings, one character at a time."""
    level = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise KeyError("duplicate")
    return dict(pairs)


def parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the record's object, None) or (None, reason)."""
    if text.startswith("base64:"):  # a record Bronze keeps as the bytes received
        try:
            text = base64.b64decode(text[7:], validate=True).decode("utf-8")
        except UnicodeDecodeError:
            return None, "not_utf8"
        except ValueError:
            return None, "not_json"
    if depth(text) > 64:
        return None, "too_deep"
    try:
        record = json.loads(text, parse_float=Decimal, object_pairs_hook=unique_keys)
    except KeyError:
        return None, "duplicate_key"
    except ValueError:
        return None, "not_json"
    if not isinstance(record, dict):
        return None, "not_an_object"
    return record, None


def check_customer(text: str) -> tuple[tuple[Any, ...] | None, str | None]:
    """(typed customer, None) or (None, reason), from the customer contract in the README."""
    record, reason = parse(text)
    if record is None:
        return None, reason
    get = record.get
    values: list[Any] = []
    customer = get("customer_id")
    if customer is None:
        return None, "missing_customer_id"
    if not isinstance(customer, str) or customer == "" or any(0xD800 <= ord(c) <= 0xDFFF for c in customer):
        return None, "invalid_customer_id"
    name = get("name")
    if name is None:
        return None, "missing_name"
    if not isinstance(name, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return None, "invalid_name"
    email = get("email")
    if email is not None:
        parts = email.split("@") if isinstance(email, str) else []
        if len(parts) != 2 or not parts[0] or not parts[1]:
            return None, "invalid_email"
    country = get("country")
    if country is None:
        return None, "missing_country"
    if not (isinstance(country, str) and len(country) == 2 and country.isascii() and country.isalpha()):
        return None, "invalid_country"
    segment = get("segment")
    if segment is None:
        return None, "missing_segment"
    if not isinstance(segment, str) or segment.lower() not in SEGMENTS:
        return None, "invalid_segment"
    values = [customer, name, email, country.upper(), segment.lower()]
    for name_of_time in ("created_at", "updated_at"):
        if get(name_of_time) is None:
            return None, f"missing_{name_of_time}"
        parsed = timestamp(get(name_of_time))
        if parsed is None:
            return None, f"invalid_{name_of_time}"
        values.append(parsed)
    return tuple(values), None


def check(text: str) -> tuple[tuple[Any, ...] | None, str | None]:
    """(typed order, None) or (None, reason)."""
    record, reason = parse(text)
    if record is None:
        return None, reason
    get = record.get
    oid = get("order_id")
    if oid is None:
        return None, "missing_order_id"
    if type(oid) is int:
        order_id = oid
    elif isinstance(oid, str) and oid and all("0" <= c <= "9" for c in oid):
        if len(oid.lstrip("0")) > 19:
            return None, "invalid_order_id"
        order_id = int(oid.lstrip("0") or "0")
    else:
        return None, "invalid_order_id"
    if not -(2**63) <= order_id < 2**63:
        return None, "invalid_order_id"
    customer = get("customer_id")
    if customer is None:
        return None, "missing_customer_id"
    if not isinstance(customer, str) or customer == "" or any(0xD800 <= ord(c) <= 0xDFFF for c in customer):
        return None, "invalid_customer_id"
    status = get("status")
    if status is None:
        return None, "missing_status"
    if not isinstance(status, str) or status.lower() not in STATUSES:
        return None, "invalid_status"
    raw_amount = get("amount")
    if raw_amount is None:
        return None, "missing_amount"
    try:
        if type(raw_amount) in (int, Decimal):
            amount = Decimal(raw_amount)
        elif isinstance(raw_amount, str) and raw_amount.strip().lower() not in ("nan", "inf", "infinity"):
            amount = Decimal(raw_amount.strip().replace("_", "!"))
        else:
            return None, "invalid_amount"
    except InvalidOperation:
        return None, "invalid_amount"
    if not amount.is_finite():
        return None, "invalid_amount"
    if amount < 0:
        return None, "negative_amount"
    if amount >= Decimal("9999999999.995"):
        return None, "amount_out_of_range"
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    currency = get("currency")
    if currency is None:
        return None, "missing_currency"
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
        return None, "invalid_currency"
    times = []
    for name in ("created_at", "updated_at"):
        if get(name) is None:
            return None, f"missing_{name}"
        parsed = timestamp(get(name))
        if parsed is None:
            return None, f"invalid_{name}"
        times.append(parsed)
    return (order_id, customer, status.lower(), amount, currency.upper(), times[0], times[1]), None


def expected(
    runs: Iterable[Iterable[str]],
    run_starts: Iterable[datetime] | None = None,
    customer_runs: Iterable[Iterable[str]] = (),
) -> Expected:
    """What the lakehouse must hold after ingesting `runs` of orders and `customer_runs` of customers
    (each the record texts of one run, in order).

    With `run_starts` (when each run started), a version stamped more than five minutes after its run
    started is rejected as future_updated_at."""
    silver: dict[int, tuple[Any, ...]] = {}
    quarantine: Counter[tuple[str, str]] = Counter()
    rejections = 0
    starts = list(run_starts) if run_starts is not None else None
    for position, records in enumerate(runs):
        for text in records:
            order, reason = check(text)
            if (
                order is not None
                and starts is not None
                and order[6] > starts[position] + timedelta(minutes=5)
            ):
                order, reason = None, "future_updated_at"
            if order is None:
                quarantine[(text, reason or "")] = 1
                rejections += 1
                continue
            current = silver.get(order[0])
            if current is None or order[6] > current[5]:  # strictly newer wins; ties keep the first
                silver[order[0]] = order[1:]
    known: dict[str, tuple[Any, ...]] = {}
    customer_quarantine: Counter[tuple[str, str]] = Counter()
    for position, records in enumerate(customer_runs):
        for text in records:
            typed, reason = check_customer(text)
            if (
                typed is not None
                and starts is not None
                and typed[6] > starts[position] + timedelta(minutes=5)
            ):
                typed, reason = None, "future_updated_at"
            if typed is None:
                customer_quarantine[(text, reason or "")] = 1
                rejections += 1
                continue
            stored = known.get(typed[0])
            if stored is None or typed[6] > stored[5]:
                known[typed[0]] = typed[1:]
    by_country: dict[tuple[Any, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    daily: dict[tuple[date, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    customers: dict[str, list[Any]] = {}
    for customer, status, amount, currency, created, _updated in silver.values():
        day = daily[(created.date(), currency)]
        day[0] += 1
        day[1] += amount if status in REVENUE else 0
        day[2] += status == "cancelled"
        day[3] += amount if status == "refunded" else 0
        entry = customers.setdefault(customer, [0, Decimal(0), created, created])
        entry[0] += 1
        entry[1] += amount if status in REVENUE else 0
        entry[2], entry[3] = min(entry[2], created), max(entry[3], created)
        country = known[customer][2] if customer in known else None
        sales = by_country[(country, currency)]
        sales[0] += 1
        sales[1] += amount if status in REVENUE else 0
    return Expected(
        silver=silver,
        quarantine=quarantine,
        daily_sales={(key[0], key[1], *values) for key, values in daily.items()},
        customer_summary={
            (customer, *values, *(known[customer][2:4] if customer in known else (None, None)))
            for customer, values in customers.items()
        },
        rejections=rejections,
        customers=known,
        customer_quarantine=customer_quarantine,
        sales_by_country={(*key, *values) for key, values in by_country.items()},
    )


# The top-level fields an order record may carry (the README's record contract).
ORDER_FIELDS = frozenset(
    {"order_id", "customer_id", "status", "amount", "currency", "created_at", "updated_at", "items"}
)

CUSTOMER_FIELDS = frozenset(
    {"customer_id", "name", "email", "country", "segment", "created_at", "updated_at"}
)


class _Keys(tuple[str, ...]):
    """The key names of a JSON object, in the order given."""


def unknown_fields(lines: Iterable[str], known: frozenset[str] = ORDER_FIELDS) -> dict[str, int]:
    """How many of the Bronze lines carry each top-level field outside `known`, counted one line at a time:
    a line that is not a JSON object (raw bytes, another JSON value, not JSON) carries none."""
    counts: Counter[str] = Counter()
    for line in lines:
        if line.startswith("base64:"):
            continue
        try:
            record = json.loads(line, object_pairs_hook=lambda pairs: _Keys(key for key, _ in pairs))
        except ValueError:
            continue
        if isinstance(record, _Keys):
            counts.update(set(record) - known)
    return dict(counts)
