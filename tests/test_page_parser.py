from __future__ import annotations

import json

import pytest

from etl.bronze.layout import raw_bytes_of
from etl.bronze.page_parser import ContractViolation, MalformedPage, parse_page
from etl.json_nesting import MAX_NESTING


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


def test_custom_field_names() -> None:
    page = parse_page('{"items": [], "next": null}', data_field="items", next_cursor_field="next")
    assert page.records == []
    assert page.next_cursor is None


def test_an_empty_string_cursor_violates_the_contract() -> None:
    with pytest.raises(ContractViolation, match="'next_cursor' is an empty string"):
        parse_page('{"data": [{"order_id": 1}], "next_cursor": ""}')


@pytest.mark.parametrize(
    "body",
    ['{"data": [{"order_id": 1}', "<html>Bad gateway</html>", '{"data": []} trailing', ""],
)
def test_bodies_that_are_not_json_are_malformed(body: str) -> None:
    with pytest.raises(MalformedPage):
        parse_page(body)


@pytest.mark.parametrize(
    "body",
    [
        '{"next_cursor": null}',
        '{"data": {"order_id": 1}}',
        '{"data": [], "next_cursor": 5}',
        "[1, 2]",
        b'{"data": [], "next_cursor": "\xff"}',
        '{"data": [], "data": []}',
        '{"data": [], "meta": ' + "[" * 65 + "]" * 65 + "}",
    ],
)
def test_json_that_is_not_a_page_violates_the_contract(body: str | bytes) -> None:
    with pytest.raises(ContractViolation):
        parse_page(body)


def test_a_repeated_data_field_is_refused_rather_than_losing_the_first_records() -> None:
    body = '{"data": [{"order_id": 1}, {"order_id": 2}, {"order_id": 3}], "next_cursor": null, "data": [5]}'
    with pytest.raises(ContractViolation, match="the page has the field 'data' more than once"):
        parse_page(body)


def test_unknown_fields_of_the_page_are_ignored() -> None:
    page = parse_page('{"total": 2, "meta": {"x": [1]}, "data": [{"order_id": 1}], "next_cursor": null}')
    assert page.records == [('{"order_id": 1}', {"order_id": 1})]


def test_a_record_that_is_not_utf8_is_kept_as_its_raw_bytes_and_the_others_as_text() -> None:
    bad = b'{"order_id": 2, "customer_id": "caf\xe9"}'
    body = b'{"data": [{"order_id": 1}, ' + bad + b', {"order_id": 3}], "next_cursor": null}'
    page = parse_page(body)
    lines = [line for line, _ in page.records]
    assert lines[0] == '{"order_id": 1}'
    assert lines[2] == '{"order_id": 3}'
    assert lines[1].startswith("base64:")
    assert raw_bytes_of(lines[1]) == bad
    assert page.records[1][1] is None


def test_invalid_bytes_outside_strings_spoil_only_their_record() -> None:
    bad = b'{"order_id": 2\xff}'
    page = parse_page(b'{"data": [' + bad + b', {"order_id": 3}]}')
    assert raw_bytes_of(page.records[0][0]) == bad
    assert page.records[1] == ('{"order_id": 3}', {"order_id": 3})


def test_a_record_that_is_not_json_is_kept_as_its_raw_bytes() -> None:
    page = parse_page('{"data": [{"order_id": 1 "x": 2}, tru, {"order_id": 3}]}')
    assert [raw_bytes_of(line) for line, _ in page.records[:2]] == [b'{"order_id": 1 "x": 2}', b"tru"]
    assert page.records[2] == ('{"order_id": 3}', {"order_id": 3})


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 1_000, 100_000])
def test_a_deeply_nested_record_is_kept_as_raw_bytes_without_recursion(levels: int) -> None:
    deep = '{"order_id": 2, "items": ' + "[" * levels + "]" * levels + "}"
    page = parse_page('{"data": [{"order_id": 1}, ' + deep + "], " + '"next_cursor": "n"}')
    assert page.records[0] == ('{"order_id": 1}', {"order_id": 1})
    assert raw_bytes_of(page.records[1][0]) == deep.encode()
    assert page.next_cursor == "n"


def test_a_record_at_the_nesting_limit_is_parsed() -> None:
    record = '{"items": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}"
    [(line, value)] = parse_page('{"data": [' + record + "]}").records
    assert line == record
    assert isinstance(value, dict)


@pytest.mark.parametrize("body", ['{"data": [{"a": [1}]}', '{"data": [{"a": "x]}'])
def test_records_whose_brackets_do_not_match_make_the_page_malformed(body: str) -> None:
    with pytest.raises(MalformedPage):
        parse_page(body)
