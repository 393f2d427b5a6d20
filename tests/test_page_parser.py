from __future__ import annotations

import json

import pytest

from etl.extract.page_parser import ContractViolation, MalformedPage, parse_page


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
    ['{"data": [{"order_id": 1}', "<html>Bad gateway</html>", '{"data": []} trailing', ""],
)
def test_bodies_that_are_not_json_are_malformed(body: str) -> None:
    with pytest.raises(MalformedPage):
        parse_page(body)


@pytest.mark.parametrize(
    "body",
    ['{"next_cursor": null}', '{"data": {"order_id": 1}}', '{"data": [], "next_cursor": 5}', "[1, 2]"],
)
def test_json_that_is_not_a_page_violates_the_contract(body: str) -> None:
    with pytest.raises(ContractViolation):
        parse_page(body)
