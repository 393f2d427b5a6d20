"""Split a page of the source API into its records' exact JSON texts.

Bronze keeps every record exactly as received, so the page is not re-serialised: each element of the
data array is cut out of the body as the text the source sent. A usual record is parsed where it starts
by the json module's C scanner, which says where it ends; any other (not JSON, or nested deeper than
that scanner recurses or than MAX_NESTING) is measured without recursion (etl.json_nesting finds where
each value ends), so no record's shape can exhaust the stack.

What is whose fault: a body that is not a JSON object (a truncated answer, an HTML error page) is
MalformedPage, worth retrying; a JSON object that is not a page of the contract (no data array, a
repeated field, a cursor that is not a non-empty string or null) is a ContractViolation, which retrying
cannot fix. A record that is not valid UTF-8, not JSON, or nested deeper than MAX_NESTING spoils
neither the page nor the run: it is kept as its raw bytes (see etl/bronze/layout.py) for Silver to quarantine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from etl.bronze.layout import raw_bytes_line
from etl.json_nesting import MAX_NESTING, value_extent

_decoder = json.JSONDecoder()
_whitespace = re.compile(r"[ \t\n\r]*")


class MalformedPage(ValueError):
    """The body is not JSON (often a truncated or an error page: worth retrying)."""


class ContractViolation(ValueError):
    """The body is JSON, but not a page of the contract: retrying cannot fix it."""


@dataclass(frozen=True)
class ParsedPage:
    # (Bronze line, parsed value) of each record, in the order received. The line is the record's exact
    # text, or its raw bytes as etl.bronze.raw_bytes_line writes them (then the value is None).
    records: list[tuple[str, Any]]
    next_cursor: str | None


def parse_page(
    body: bytes | bytearray | str, data_field: str = "data", next_cursor_field: str = "next_cursor"
) -> ParsedPage:
    """The records and the next cursor of one page; `body` as received (bytes) or already decoded."""
    # Bytes that are not UTF-8 become lone surrogates (surrogateescape), which no decoded UTF-8 text
    # holds: the page still parses, and each record's exact bytes can be given back.
    text = body if isinstance(body, str) else _decode(body)
    try:
        fields = _scan_object(text, data_field)
    except (ValueError, IndexError) as e:
        if isinstance(e, ContractViolation):
            raise
        if text.lstrip().startswith("[") and _is_one_value(text):
            raise ContractViolation("the page is a JSON array, not an object") from e
        raise MalformedPage(f"not a JSON object: {e}") from e
    records = fields.get(data_field)
    if not isinstance(records, list):
        raise ContractViolation(f"the page has no {data_field!r} array")
    cursor = fields.get(next_cursor_field)
    if cursor is not None and not isinstance(cursor, str):
        raise ContractViolation(
            f"{next_cursor_field!r} must be a string or null, got {type(cursor).__name__}"
        )
    if cursor is not None and not _is_utf8(cursor):
        raise ContractViolation(f"{next_cursor_field!r} is not valid UTF-8")
    if cursor == "":
        raise ContractViolation(
            f"{next_cursor_field!r} is an empty string: the last page must send null or leave it out"
        )
    return ParsedPage(records=records, next_cursor=cursor)


def _decode(body: bytes | bytearray) -> str:
    # utf-8-sig: JSON has no byte order mark, but some servers send one.
    return body.decode("utf-8-sig", errors="surrogateescape")


def _is_one_value(text: str) -> bool:
    start = _skip(text, 0)
    try:
        end, _ = value_extent(text, start)
    except ValueError:
        return False
    return _skip(text, end) == len(text)


def one_line(text: str) -> str:
    """The record on one line. A raw line break can only be whitespace between tokens (JSON strings
    escape them), so replacing it with a space keeps every value intact."""
    return text.replace("\r", " ").replace("\n", " ") if ("\n" in text or "\r" in text) else text


def _skip(body: str, index: int) -> int:
    match = _whitespace.match(body, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _scan_object(body: str, data_field: str) -> dict[str, Any]:
    """The top-level object's fields; the data field as [(line, value), ...], the others parsed."""
    fields: dict[str, Any] = {}
    index = _skip(body, 0)
    if body[index] != "{":
        raise ValueError("expected '{'")
    index = _skip(body, index + 1)
    if body[index] == "}":
        index += 1
    else:
        while True:
            if body[index] != '"':
                raise ValueError(f"expected a field name at {index}")
            key, index = json.decoder.scanstring(body, index + 1)  # type: ignore[attr-defined]
            if key in fields:
                # Which copy would count? Keeping one silently loses the other's records.
                raise ContractViolation(f"the page has the field {key!r} more than once")
            index = _skip(body, index)
            if body[index] != ":":
                raise ValueError(f"expected ':' at {index}")
            index = _skip(body, index + 1)
            if key == data_field and body[index] == "[":
                fields[key], index = _scan_array(body, index)
            else:
                fields[key], index = _field_value(body, index, key)
            index = _skip(body, index)
            if body[index] == ",":
                index = _skip(body, index + 1)
            elif body[index] == "}":
                index += 1
                break
            else:
                raise ValueError(f"expected ',' or '}}' at {index}")
    if _skip(body, index) != len(body):
        raise ValueError("extra data after the object")
    return fields


def _field_value(body: str, index: int, key: str) -> tuple[Any, int]:
    """A field of the page other than the data array: parsed, unless it nests too deep to parse."""
    end, nesting = value_extent(body, index)
    if nesting > MAX_NESTING:
        raise ContractViolation(f"the page's field {key!r} nests deeper than {MAX_NESTING} levels")
    value, parsed_end = _decoder.raw_decode(body, index)
    if parsed_end != end:
        raise ValueError(f"unexpected data at {parsed_end}")
    return value, end


def _scan_array(body: str, index: int) -> tuple[list[tuple[str, Any]], int]:
    items: list[tuple[str, Any]] = []
    index = _skip(body, index + 1)
    if body[index] == "]":
        return items, index + 1
    while True:
        start = index
        parsed = _plain_record(body, start)
        if parsed is None:
            index, nesting = value_extent(body, start)
            items.append(_record(body[start:index], nesting))
        else:
            record, index = parsed
            items.append(record)
        index = _skip(body, index)
        if body[index] == ",":
            index = _skip(body, index + 1)
        elif body[index] == "]":
            return items, index + 1
        else:
            raise ValueError(f"expected ',' or ']' at {index}")


def _plain_record(body: str, start: int) -> tuple[tuple[str, Any], int] | None:
    """The record at `start` and where it ends, when it is valid UTF-8 JSON that cannot nest deeper than
    MAX_NESTING; None for anything else, which `value_extent` and `_record` then measure and keep.

    The usual record is parsed once, by the json module's C scanner, which also says where it ends: the
    bracket scan in Python took most of a page's parsing time. Each condition below sends a record the
    scan would have ended elsewhere, or kept as raw bytes, to the scan, so the result is the same.
    """
    try:
        value, end = _decoder.raw_decode(body, start)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the C scanner goes
        return None
    after = _skip(body, end)
    if after == len(body) or body[after] not in ",]":
        return None  # a scalar that runs on ("12abc"): the scan takes it whole
    if body.count("[", start, end) + body.count("{", start, end) > MAX_NESTING:
        return None  # may nest too deep (brackets inside strings count here too)
    text = body[start:end]
    if not (text.isascii() or _is_utf8(text)):
        return None
    return (one_line(text), value), end


def _record(text: str, nesting: int) -> tuple[str, Any]:
    """(Bronze line, value) of one record's text."""
    if nesting <= MAX_NESTING:
        try:
            value, end = _decoder.raw_decode(text)
        except ValueError:
            end = -1
        if end == len(text) and (text.isascii() or _is_utf8(text)):
            return one_line(text), value
    return raw_bytes_line(text.encode("utf-8", errors="surrogateescape")), None


def _is_utf8(text: str) -> bool:
    """False when the text holds bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
