"""Split a page of the source API into its records' exact JSON texts.

Bronze keeps every record exactly as received, so the page is not re-serialised: each element of the
data array is cut out of the body as the text the source sent. The scanner below walks the top-level
object with the standard library's JSON scanner, so each value is parsed once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_decoder = json.JSONDecoder()
_whitespace = re.compile(r"[ \t\n\r]*")


class MalformedPage(ValueError):
    """The body is not JSON (often a truncated or an error page: worth retrying)."""


class ContractViolation(ValueError):
    """The body is JSON, but not a page of the contract: retrying cannot fix it."""


@dataclass(frozen=True)
class ParsedPage:
    # (exact text, parsed value) of each record, in the order received.
    records: list[tuple[str, Any]]
    next_cursor: str | None


def parse_page(body: str, data_field: str = "data", next_cursor_field: str = "next_cursor") -> ParsedPage:
    try:
        fields = _scan_object(body, data_field)
    except (ValueError, IndexError) as e:
        if body.lstrip().startswith("[") and _is_json(body):
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
    return ParsedPage(records=records, next_cursor=cursor or None)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def one_line(text: str) -> str:
    """The record on one line. A raw line break can only be whitespace between tokens (JSON strings
    escape them), so replacing it with a space keeps every value intact."""
    return text.replace("\r", " ").replace("\n", " ") if ("\n" in text or "\r" in text) else text


def _skip(body: str, index: int) -> int:
    match = _whitespace.match(body, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _scan_object(body: str, data_field: str) -> dict[str, Any]:
    """The top-level object's fields; the data field as [(text, value), ...], the others parsed."""
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
            index = _skip(body, index)
            if body[index] != ":":
                raise ValueError(f"expected ':' at {index}")
            index = _skip(body, index + 1)
            if key == data_field and body[index] == "[":
                fields[key], index = _scan_array(body, index)
            else:
                fields[key], index = _decoder.raw_decode(body, index)
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


def _scan_array(body: str, index: int) -> tuple[list[tuple[str, Any]], int]:
    items: list[tuple[str, Any]] = []
    index = _skip(body, index + 1)
    if body[index] == "]":
        return items, index + 1
    while True:
        start = index
        value, index = _decoder.raw_decode(body, index)
        items.append((one_line(body[start:index]), value))
        index = _skip(body, index)
        if body[index] == ",":
            index = _skip(body, index + 1)
        elif body[index] == "]":
            return items, index + 1
        else:
            raise ValueError(f"expected ',' or ']' at {index}")
