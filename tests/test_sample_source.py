"""The sample source: deterministic, every path of the pipeline exercised, one more batch per run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from datasets.orders import DATASET as ORDERS
from etl.silver.rules import Rejected, Validator
from local.sample_api.generator import SampleSource, Slot
from local.sample_api.published import SampleStateError, publish_next_batch
from local.sample_api.server import decode_cursor, encode_cursor, first_position

validate_order = Validator(ORDERS)


def test_the_same_seed_gives_the_same_records_and_another_seed_other_ones() -> None:
    first = list(SampleSource(seed=1, initial_orders=500, batches=2).records())
    assert first == list(SampleSource(seed=1, initial_orders=500, batches=2).records())
    assert first != list(SampleSource(seed=2, initial_orders=500, batches=2).records())


def test_later_batches_hold_every_kind_of_record() -> None:
    source = SampleSource(seed=4, initial_orders=20_000, change_fraction=0.1, batches=2)
    kinds = Counter(source.slot_kind(2, slot) for slot in range(source.batch_size(2)))
    assert set(kinds) == set(Slot)
    reasons: Counter[str] = Counter()
    for slot in range(source.batch_size(2)):
        try:
            validate_order(source.record_text(2, slot))
        except Rejected as rejected:
            reasons[rejected.reason] += 1
    assert 0.005 < sum(reasons.values()) / source.batch_size(2) < 0.03
    assert len(reasons) >= 6


def test_updates_refer_to_orders_of_earlier_batches() -> None:
    source = SampleSource(seed=4, initial_orders=1_000, batches=2)
    earlier = {
        json.loads(text)["order_id"] for batch, _, text in source.records() if batch == 1 and "{" in text
    }
    updated = [
        json.loads(source.record_text(2, slot))["order_id"]
        for slot in range(source.batch_size(2))
        if source.slot_kind(2, slot) is Slot.UPDATE
    ]
    assert updated and all(order_id in earlier or str(order_id).isdigit() for order_id in updated)


def test_changes_are_served_in_time_order_from_any_watermark() -> None:
    source = SampleSource(seed=4, initial_orders=100, batches=3)
    assert first_position(source, None) == (1, 0)
    assert first_position(source, "2025-01-01T00:00:00Z") == (2, 0)
    assert first_position(source, "2030-01-01T00:00:00Z") == (4, 0)
    assert decode_cursor(encode_cursor(3, 7)) == (3, 7)
    with pytest.raises(ValueError, match="RFC 3339"):
        first_position(source, "soon")


def test_each_run_publishes_one_more_batch(tmp_path: Path) -> None:
    assert publish_next_batch(tmp_path, initial_orders=300, seed=9).batches == 1
    second = publish_next_batch(tmp_path)
    assert (second.batches, second.initial_orders, second.seed) == (2, 300, 9)
    with pytest.raises(SampleStateError, match="use a new --data-dir"):
        publish_next_batch(tmp_path, initial_orders=400)


def test_a_conflict_repeats_the_previous_order_and_time_with_another_status() -> None:
    source = SampleSource(seed=4, initial_orders=5_000, batches=2)
    conflicts = [
        (batch, slot) for batch, slot, _ in source.records() if source.slot_kind(batch, slot) is Slot.CONFLICT
    ]
    assert conflicts
    for batch, slot in conflicts:
        previous, conflict = (json.loads(source.record_text(batch, s)) for s in (slot - 1, slot))
        assert (conflict["order_id"], conflict["updated_at"]) == (
            previous["order_id"],
            previous["updated_at"],
        )
        assert conflict["status"].lower() != previous["status"].lower()
