"""Records that break parsers, end to end through the local pipeline: they are kept in Bronze as the
bytes received, quarantined by Silver with their own reason, and the rest of their page is merged."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from etl.bronze.layout import raw_bytes_of
from tests.hostile_api import Answer, HostileApi, Request
from tests.reference import expected
from tests.test_end_to_end import assert_tables_match, lakehouse, read_table

pytestmark = pytest.mark.spark


def order(order_id: int, customer: str = "alice") -> bytes:
    return json.dumps(
        {
            "order_id": order_id,
            "customer_id": customer,
            "status": "paid",
            "amount": 10,
            "currency": "EUR",
            "created_at": "2026-05-02T00:00:00Z",
            "updated_at": "2026-05-02T00:00:00Z",
        }
    ).encode()


def test_records_not_utf8_or_nested_too_deep_are_quarantined_with_their_bytes_and_the_page_merged(
    tmp_path: Path,
) -> None:
    not_utf8 = order(2, customer="caf\udce9").replace(b"\\udce9", b"\xe9")  # Latin-1 é in the raw bytes
    nested_600 = order(3)[:-1] + b', "items": ' + b"[" * 600 + b"]" * 600 + b"}"
    nested_1000 = order(4)[:-1] + b', "items": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    repeated_key = order(5)[:-1] + b', "order_id": 55}'
    records = [order(1), not_utf8, nested_600, nested_1000, repeated_key, order(6)]
    body = b'{"data": [' + b", ".join(records) + b'], "next_cursor": null}'

    def respond(answer: Answer, request: Request) -> None:
        answer.send(body if request.path == "/v1/orders" else b'{"data": [], "next_cursor": null}')

    data_dir = tmp_path / "data"
    with HostileApi(respond) as api:
        # Four of six records quarantined would fail the quarantine-rate audit: this test is about them.
        result = lakehouse("run", "--data-dir", str(data_dir), "--publish-anyway", SOURCE_BASE_URL=api.url)
    assert result.returncode == 0, result.stderr
    assert [r.path for r in api.requests] == ["/v1/customers", "/v1/orders"]  # no page retried

    # Bronze keeps the three records no parser should take as base64 of their bytes
    # (see etl/bronze/layout.py).
    as_raw = {not_utf8, nested_600, nested_1000}
    lines = ["base64:" + base64.b64encode(r).decode() if r in as_raw else r.decode() for r in records]
    assert_tables_match(data_dir, expected([lines]))
    assert sorted(row["order_id"] for row in read_table(data_dir, "silver.orders")) == [1, 6]
    quarantine = {
        row["reason"]: row["raw_record"] for row in read_table(data_dir, "silver.orders_quarantine")
    }
    assert sorted(quarantine) == ["duplicate_key", "not_utf8", "too_deep"]
    assert raw_bytes_of(quarantine["not_utf8"]) == not_utf8
    assert quarantine["duplicate_key"] == repeated_key.decode()
    rows = read_table(data_dir, "silver.orders_quarantine")
    assert sorted(raw_bytes_of(row["raw_record"]) or b"" for row in rows if row["reason"] == "too_deep") == [
        nested_600,
        nested_1000,
    ]
    [run] = [run for run in read_table(data_dir, "silver.ingestion_runs") if run["dataset"] == "orders"]
    assert (run["records"], run["accepted"], run["quarantined"]) == (6, 2, 4)
