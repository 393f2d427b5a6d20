from __future__ import annotations

import json

import pytest

from etl.extract.page_parser import MalformedPage, parse_page


def test_keeps_each_record_exactly_as_received() -> None:
    body = (
        '{"next_cursor": "abc",  "data": [ {"order_id": 1, "amount": 10.50},\n'
        '{"order_id":"2","note":"caf\\u00e9 \\"x\\""} , "not an object", 3.0 ] }'
    )
    page = parse_page(body)
    assert [text for text, _ in page.records] == [
        '{"order_id": 1, "amount": 10.50}',
        '{"order_id":"2","note":"caf\\u00e9 \\"x\\""}',
        '"not an object"',
        "3.0",
    ]
    assert [value for _, value in page.records][1] == {"order_id": "2", "note": 'café "x"'}
    assert page.next_cursor == "abc"


def test_pretty_printed_records_become_one_line_with_the_same_values() -> None:
    record = {"order_id": 7, "items": [{"sku": "A", "quantity": 2}], "text": "two\nlines"}
    body = json.dumps({"data": [record], "next_cursor": None}, indent=2)
    page = parse_page(body)
    [(text, value)] = page.records
    assert "\n" not in text
    assert json.loads(text) == record == value
    assert page.next_cursor is None


def test_custom_field_names_and_empty_cursor() -> None:
    page = parse_page('{"items": [], "next": ""}', data_field="items", next_cursor_field="next")
    assert page.records == []
    assert page.next_cursor is None


@pytest.mark.parametrize(
    "body",
    [
        '{"data": [{"order_id": 1}',  # truncated
        "<html>Bad gateway</html>",
        '{"next_cursor": null}',  # no data
        '{"data": {"order_id": 1}}',  # data not an array
        '{"data": [], "next_cursor": 5}',
        '{"data": []} trailing',
        "[1, 2]",
        "",
    ],
)
def test_rejects_bodies_that_are_not_a_page(body: str) -> None:
    with pytest.raises(MalformedPage):
        parse_page(body)
