"""Deterministic sample orders: the records the sample API serves, as a function of a seed.

The source publishes *batches*. Batch 1 is the history (90 days of new orders); each later batch covers one
day and holds new orders, updates to earlier orders (some of them moving the order to another day), stale
replays of old versions, a small share of invalid records (some of them newer versions of existing
orders), exact duplicates, and conflicting versions with the same `updated_at`. Every record is
computed from (seed, batch, slot) alone, so any page can be served without holding the data in memory.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from functools import partial
from typing import Any

from etl.timestamps import format_rfc3339, parse_rfc3339

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
HISTORY = timedelta(days=90)
BATCH_WIDTH = timedelta(days=1)
_MICROS = 1_000_000

CURRENCIES = ("EUR", "USD", "GBP", "JPY")
PRODUCTS = ("SKU-KETTLE", "SKU-MUG", "SKU-TEA", "SKU-LAMP", "SKU-BOOK", "SKU-PEN")
# The statuses datasets/orders.py declares (the sample source also sends a few it does not).
ORDER_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
LATER_STATUSES = ORDER_STATUSES[1:]


class Slot(Enum):
    NEW = "new"
    UPDATE = "update"
    STALE = "stale"  # an older version of an order re-sent late: must never overwrite a newer one
    INVALID = "invalid"
    INVALID_UPDATE = "invalid_update"  # an invalid newer version of an existing order
    DUPLICATE = "duplicate"  # the previous slot's record, byte for byte
    CONFLICT = "conflict"  # the previous slot's order and updated_at, another status: the first one wins


# The invalid records the sample produces, each breaking exactly one rule.
INVALID_KINDS = (
    "not_an_object",
    "missing_customer_id",
    "negative_amount",
    "bad_currency",
    "unknown_status",
    "bad_timestamp",
    "bad_order_id",
    "bad_amount",
)


def _mix(*values: int) -> int:
    """A 64-bit hash of the values (splitmix64 steps): cheap, stable across Python versions."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h


@dataclass(frozen=True)
class SampleSource:
    """The sample data set: `batches` batches published so far, sized from `initial_orders`."""

    seed: int = 7
    initial_orders: int = 5_000
    # Records in each later batch, as a share of initial_orders.
    change_fraction: float = 0.1
    invalid_share: float = 0.01
    duplicate_share: float = 0.01
    conflict_share: float = 0.005
    stale_share: float = 0.005
    batches: int = 1

    def __post_init__(self) -> None:
        if self.initial_orders < 1 or self.batches < 1:
            raise ValueError("initial_orders and batches must be at least 1")
        if not 0 < self.change_fraction <= 1:
            raise ValueError("change_fraction must be in (0, 1]")

    # -- layout of the batches ------------------------------------------------------------------------

    def batch_size(self, batch: int) -> int:
        if batch == 1:
            return self.initial_orders
        return max(1, round(self.initial_orders * self.change_fraction))

    def batch_window(self, batch: int) -> tuple[datetime, datetime]:
        if batch == 1:
            return EPOCH - HISTORY, EPOCH
        start = EPOCH + (batch - 2) * BATCH_WIDTH
        return start, start + BATCH_WIDTH

    def slot_time_us(self, batch: int, slot: int) -> int:
        """When the source changed the record in this slot, in microseconds since EPOCH (rises with slot)."""
        start, end = self.batch_window(batch)
        width = int((end - start).total_seconds()) * _MICROS
        offset = int((start - EPOCH).total_seconds()) * _MICROS
        return offset + slot * width // self.batch_size(batch)

    def first_slot_at_or_after(self, batch: int, time_us: int) -> int:
        """The first slot of `batch` whose time is >= time_us (batch_size when there is none)."""
        return first_slot_at_or_after(self.batch_size(batch), partial(self.slot_time_us, batch), time_us)

    # -- what each slot holds -------------------------------------------------------------------------

    def slot_kind(self, batch: int, slot: int) -> Slot:
        roll = _mix(self.seed, batch, slot, 1) / 2**64
        if slot > 0 and roll < self.duplicate_share + self.conflict_share:
            previous = self._base_kind(batch, slot - 1)
            if roll < self.duplicate_share and previous != Slot.DUPLICATE:
                return Slot.DUPLICATE
            if roll >= self.duplicate_share and previous in (Slot.NEW, Slot.UPDATE):
                return Slot.CONFLICT
        return self._base_kind(batch, slot)

    def _base_kind(self, batch: int, slot: int) -> Slot:
        roll = _mix(self.seed, batch, slot, 2) / 2**64
        if roll < self.invalid_share:
            return Slot.INVALID if batch == 1 or roll < self.invalid_share / 2 else Slot.INVALID_UPDATE
        if batch == 1:
            return Slot.NEW
        roll = (roll - self.invalid_share) / (1 - self.invalid_share)
        if roll < self.stale_share:
            return Slot.STALE
        return Slot.NEW if roll < 0.5 else Slot.UPDATE

    def record_text(self, batch: int, slot: int) -> str:
        """The JSON text of the record in this slot, as the API serves it."""
        kind = self.slot_kind(batch, slot)
        if kind == Slot.DUPLICATE:
            return self.record_text(batch, slot - 1)
        if kind == Slot.CONFLICT:
            record = json.loads(self.record_text(batch, slot - 1))
            record["status"] = "paid" if str(record["status"]).lower() == "cancelled" else "cancelled"
            return json.dumps(record, separators=(",", ":"))
        updated_at = EPOCH + timedelta(microseconds=self.slot_time_us(batch, slot))
        if kind == Slot.NEW:
            record = self._order(batch, slot, updated_at, "placed")
        elif kind == Slot.UPDATE:
            record = self._update(batch, slot, updated_at)
        elif kind == Slot.STALE:
            origin_batch, origin_slot = self._earlier_order(batch, slot)
            origin_time = EPOCH + timedelta(microseconds=self.slot_time_us(origin_batch, origin_slot))
            record = self._order(origin_batch, origin_slot, origin_time, "placed")
        elif kind == Slot.INVALID_UPDATE:
            record = self._update(batch, slot, updated_at)
            record["status"] = "on_hold"
        else:
            invalid_kind = INVALID_KINDS[_mix(self.seed, batch, slot, 3) % len(INVALID_KINDS)]
            return _invalid(invalid_kind, self._order(batch, slot, updated_at, "placed"))
        return json.dumps(record, separators=(",", ":"))

    def records(self, first_batch: int = 1) -> Iterator[tuple[int, int, str]]:
        """(batch, slot, text) of every published record from `first_batch` on, in the order served."""
        for batch in range(first_batch, self.batches + 1):
            for slot in range(self.batch_size(batch)):
                yield batch, slot, self.record_text(batch, slot)

    # -- order attributes: functions of the batch and slot where the order was created -----------------

    def order_id(self, batch: int, slot: int) -> int:
        return batch * 100_000_000 + slot + 1

    def _order(self, batch: int, slot: int, updated_at: datetime, status: str) -> dict[str, Any]:
        h = _mix(self.seed, batch, slot, 4)
        created_at = EPOCH + timedelta(microseconds=self.slot_time_us(batch, slot))
        items = [
            {"sku": PRODUCTS[(h >> (8 * n)) % len(PRODUCTS)], "quantity": 1 + (h >> (8 * n + 3)) % 3}
            for n in range(1 + h % 3)
        ]
        record: dict[str, Any] = {
            "order_id": self.order_id(batch, slot),
            "customer_id": f"C{1 + (h >> 20) % max(10, self.initial_orders // 4):07d}",
            "status": status,
            "amount": round(5 + (h >> 32) % 50_000 / 100, 2),
            "currency": CURRENCIES[(h >> 16) % len(CURRENCIES)],
            "created_at": format_rfc3339(created_at),
            "updated_at": format_rfc3339(updated_at),
            "items": items,
        }
        # Valid variations the Silver job must type correctly.
        variation = (h >> 40) % 20
        if variation == 0:
            record["order_id"] = str(record["order_id"])
        elif variation == 1:
            record["amount"] = f"{record['amount']:.2f}"
        elif variation == 2:
            record["currency"] = record["currency"].lower()
        elif variation == 3:
            record["created_at"] = _with_offset(created_at, hours=2)
            record["updated_at"] = _with_offset(updated_at, hours=-5)
        elif variation == 4:
            del record["items"]
            record["channel"] = "phone"  # an unknown extra field
        elif variation == 5:
            record["amount"] = f"{record['amount']:.2f}5"  # three decimals: rounded half up
        return record

    def _earlier_order(self, batch: int, slot: int) -> tuple[int, int]:
        """A (batch, slot) of an earlier batch that created an order."""
        h = _mix(self.seed, batch, slot, 5)
        origin_batch = 1 + h % (batch - 1)
        origin_slot = (h >> 16) % self.batch_size(origin_batch)
        while self.slot_kind(origin_batch, origin_slot) != Slot.NEW:
            origin_slot = (origin_slot + 1) % self.batch_size(origin_batch)
        return origin_batch, origin_slot

    def _update(self, batch: int, slot: int, updated_at: datetime) -> dict[str, Any]:
        origin_batch, origin_slot = self._earlier_order(batch, slot)
        status = LATER_STATUSES[_mix(self.seed, batch, slot, 6) % len(LATER_STATUSES)]
        record = self._order(origin_batch, origin_slot, updated_at, status)
        h = _mix(self.seed, batch, slot, 7)
        if h % 10 == 0:
            record["status"] = status.upper()
        if h % 20 == 1:  # a correction of when the order was placed: it moves to another day (and month)
            created = parse_rfc3339(str(record["created_at"]))
            if created is not None:
                record["created_at"] = format_rfc3339(created + timedelta(days=1))
        return record


def _with_offset(instant: datetime, hours: int) -> str:
    """The same instant written with a non-UTC offset, e.g. 2025-01-01T02:00:00+02:00."""
    local = instant.astimezone(timezone(timedelta(hours=hours)))
    return local.isoformat(timespec="microseconds" if instant.microsecond else "seconds")


def _invalid(kind: str, record: dict[str, Any]) -> str:
    if kind == "not_an_object":
        return json.dumps(f"order {record['order_id']} could not be serialised")
    if kind == "missing_customer_id":
        del record["customer_id"]
    elif kind == "negative_amount":
        record["amount"] = -abs(float(record["amount"]))
    elif kind == "bad_currency":
        record["currency"] = "EURO"
    elif kind == "unknown_status":
        record["status"] = "lost_in_transit"
    elif kind == "bad_timestamp":
        record["updated_at"] = "yesterday"
    elif kind == "bad_order_id":
        record["order_id"] = f"A-{record['order_id']}"
    elif kind == "bad_amount":
        record["amount"] = "12,50"
    return json.dumps(record, separators=(",", ":"))


def first_slot_at_or_after(size: int, slot_time_us: Callable[[int], int], time_us: int) -> int:
    """The first of `size` slots whose time (rising with the slot) is >= time_us; `size` when none is."""
    return bisect.bisect_left(range(size), time_us, key=slot_time_us)
