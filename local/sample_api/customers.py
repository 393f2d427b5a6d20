"""Deterministic sample customers, served beside the sample orders with the same batches and contract.

Batch 1 holds every customer the sample orders refer to (C0000001 onwards), changed during the history;
each later batch changes a few of them again (another country or segment, an email added or dropped) and
sends a small share of invalid records. Like the orders, every record is computed from (seed, batch, slot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from etl.timestamps import format_rfc3339
from local.sample_api.generator import EPOCH, SampleSource, _mix, first_slot_at_or_after

COUNTRIES = ("DE", "FR", "US", "GB", "JP", "NL")
SEGMENTS = ("consumer", "business", "enterprise")
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")


@dataclass(frozen=True)
class CustomerSource:
    """The customers of `orders`: as many as its customer ids, changed over the same batches."""

    orders: SampleSource
    change_share: float = 0.05
    invalid_share: float = 0.02

    @property
    def batches(self) -> int:
        return self.orders.batches

    @property
    def customers(self) -> int:
        return max(10, self.orders.initial_orders // 4)  # the customer ids the sample orders use

    def batch_size(self, batch: int) -> int:
        return self.customers if batch == 1 else max(1, round(self.customers * self.change_share))

    def slot_time_us(self, batch: int, slot: int) -> int:
        start, end = self.orders.batch_window(batch)
        width = int((end - start) / timedelta(microseconds=1))
        offset = int((start - EPOCH) / timedelta(microseconds=1))
        return offset + slot * width // self.batch_size(batch)

    def first_slot_at_or_after(self, batch: int, time_us: int) -> int:
        return first_slot_at_or_after(self.batch_size(batch), partial(self.slot_time_us, batch), time_us)

    def customer_number(self, batch: int, slot: int) -> int:
        if batch == 1:
            return slot + 1
        return 1 + _mix(self.orders.seed, batch, slot, 21) % self.customers

    def record_text(self, batch: int, slot: int) -> str:
        number = self.customer_number(batch, slot)
        h = _mix(self.orders.seed, batch, slot, 22)
        updated_at = EPOCH + timedelta(microseconds=self.slot_time_us(batch, slot))
        created_at = EPOCH - timedelta(days=120) + timedelta(minutes=number)
        record: dict[str, Any] = {
            "customer_id": f"C{number:07d}",
            "name": f"{NAMES[h % len(NAMES)]} {number}",
            "email": f"customer{number}@example.com",
            "country": COUNTRIES[(h >> 8) % len(COUNTRIES)],
            "segment": SEGMENTS[(h >> 16) % len(SEGMENTS)],
            "created_at": format_rfc3339(created_at),
            "updated_at": format_rfc3339(updated_at),
        }
        variation = (h >> 24) % 10
        if variation == 0:
            del record["email"]
        elif variation == 1:
            record["country"] = record["country"].lower()
        elif variation == 2:
            record["segment"] = record["segment"].upper()
        elif variation == 3:
            record["phone"] = f"+1555{number:07d}"  # a field the declaration does not know
        if (h >> 40) % 10_000 < self.invalid_share * 10_000 and batch > 1:
            broken = (h >> 32) % 4
            if broken == 0:
                record["email"] = "two@at@signs"
            elif broken == 1:
                record["country"] = "Deutschland"
            elif broken == 2:
                record["segment"] = "vip"
            else:
                del record["name"]
        return json.dumps(record)
