"""The page parser's fast path (the json module's C scanner) gives what the bracket scan alone gave.

The oracle is the parser with its fast path switched off: the scan of etl.json_nesting for every record,
as pages were parsed before, so Bronze lines stay byte for byte what they were.
"""

from __future__ import annotations

import json

import pytest

from etl.bronze import page_parser
from etl.bronze.page_parser import ParsedPage, parse_page
from etl.json_nesting import MAX_NESTING
from local.sample_api.generator import SampleSource

RECORDS = [
    '{"order_id": 1, "amount": 10.50, "updated_at": "2026-11-26T07:00:00Z"}',
    '{\n  "order_id": 2,\n  "items": [{"sku": "A"}]\n}',  # pretty-printed: one line in Bronze
    '{"note": "caf\\u00e9 \\"x\\" [[{{ ]]", "n": -1.5e3}',  # brackets and quotes inside strings
    '{"note": "' + "[" * (MAX_NESTING + 5) + '"}',  # many brackets, all inside a string: not deep
    '{"a": 1, "a": 2}',  # a repeated key
    '{"tab": "a\tb"}',  # a raw control character in a string: not JSON
    '{"x": "\\q"}',  # an invalid escape
    "12abc",  # a scalar that runs on
    "1.5",
    "Infinity",
    "true",
    "null",
    '"just a string"',
    "[]",
    "{}",
    "tru",
    '{"order_id": 3 "x": 4}',
    '{"items": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}",  # at the limit
    '{"items": ' + "[" * MAX_NESTING + "]" * MAX_NESTING + "}",  # one past it
    '{"items": ' + "[" * 5_000 + "]" * 5_000 + "}",  # past what the C scanner recurses into
]


def parsed_by_the_scan(body: str | bytes) -> ParsedPage:
    saved = page_parser._plain_record
    page_parser._plain_record = lambda body, start: None
    try:
        return parse_page(body)
    finally:
        page_parser._plain_record = saved


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_each_kind_of_record_is_parsed_as_the_scan_parsed_it(record: str) -> None:
    body = '{"data": [{"order_id": 0}, ' + record + ' ,\n{"order_id": 9}], "next_cursor": "n"}'
    assert parse_page(body) == parsed_by_the_scan(body)


def test_records_that_are_not_utf8_are_parsed_as_the_scan_parsed_them() -> None:
    body = b'{"data": [{"name": "caf\xe9"}, {"order_id": 2\xff}, {"order_id": 3}], "next_cursor": null}'
    assert parse_page(body) == parsed_by_the_scan(body)


def test_a_page_of_the_sample_api_is_parsed_as_the_scan_parsed_it() -> None:
    texts = [text for _, _, text in SampleSource(seed=3, initial_orders=400).records()]
    body = json.dumps({"data": [json.loads(t) for t in texts], "next_cursor": None}, indent=1)
    assert parse_page(body) == parsed_by_the_scan(body)
    body = '{"data":[' + ",".join(texts) + '],"next_cursor":"c"}'
    page = parse_page(body)
    assert page == parsed_by_the_scan(body)
    assert [text for text, _ in page.records] == texts


@pytest.mark.parametrize("body", ['{"data": [{"a": [1}]}', '{"data": [1 2]}', '{"data": [{"a": 1}}'])
def test_pages_the_scan_found_malformed_still_are(body: str) -> None:
    with pytest.raises(page_parser.MalformedPage):
        parse_page(body)
    with pytest.raises(page_parser.MalformedPage):
        parsed_by_the_scan(body)
