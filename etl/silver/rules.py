"""Validation and typing of one record against its dataset's declaration: one stable reason per rejection.

The rules need the record's JSON types (`123` and `"123"` are both valid integers, but only a string is a
valid STRING), which Spark's JSON reader erases, so a record is checked here as parsed by Python's json
module. Fields are checked in the order the declaration lists them, each field's constraints in their
order; the first that fails names the record's reason (etl/dataset.py lists the codes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from etl.bronze.layout import RAW_BYTES_PREFIX, raw_bytes_of
from etl.dataset import Dataset, Field
from etl.json_nesting import too_deep
from etl.timestamps import parse_rfc3339

_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_TYPE = re.compile(r"DECIMAL\(\s*([0-9]+)\s*,\s*([0-9]+)\s*\)")
# What compact_json writes for a value without Decimals, byte for byte (ASCII, no spaces).
_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
INTEGER_BITS = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "INTEGER": 32, "BIGINT": 64}


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _DuplicateKey(Exception):
    pass


class Validator:
    """Checks records against one dataset: `validator(line)` is the typed values of the dataset's fields,
    in their declared order, or raises Rejected with the first rule the record breaks."""

    def __init__(self, dataset: Dataset) -> None:
        self._readers = tuple(_reader(f) for f in dataset.fields)

    def __call__(self, line: str) -> tuple[Any, ...]:
        return self.typed(parse_record(line))

    def typed(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The typed values of a parsed record (parse_record), or Rejected."""
        return tuple([read(record) for read in self._readers])  # a list is quicker than a generator


def unknown_fields(line: str, record: dict[str, Any] | None, known: frozenset[str]) -> list[str] | None:
    """The top-level field names of a Bronze line's record outside `known`, each once, or None for none.

    `record` is the line as parse_record read it, None when it could not: a record with a field given
    twice is read again for its names, anything else that is not a JSON object carries no fields (a
    record kept as raw bytes is not JSON text; one nested too deep is not parsed).
    """
    if line.startswith(RAW_BYTES_PREFIX):
        return None
    names: Iterable[str] = record if record is not None else ()
    if record is None and not too_deep(line):
        try:
            parsed = json.loads(line, object_pairs_hook=_field_names)
        except ValueError:
            return None
        names = parsed if isinstance(parsed, _FieldNames) else ()
    unknown = [_storable(name) for name in names if name not in known]
    return list(dict.fromkeys(unknown)) or None


class _FieldNames(tuple[str, ...]):
    """The field names of a JSON object, in the order given."""


def _field_names(pairs: list[tuple[str, Any]]) -> _FieldNames:
    return _FieldNames(name for name, _ in pairs)


def _storable(name: str) -> str:
    """`name` as a Spark string can hold it: a lone surrogate (from an escape) becomes "?", as in the JVM."""
    return name if _is_unicode(name) else name.encode("utf-8", "replace").decode("utf-8")


def parse_record(line: str) -> dict[str, Any]:
    """The JSON object in a Bronze line, or Rejected with why it is not one."""
    text = _record_text(line)
    # Measured without recursion first: json.loads and compact_json recurse once per level.
    if too_deep(text):
        raise Rejected("too_deep")
    try:
        record = _DECODER.decode(text)
    except _DuplicateKey as e:
        raise Rejected("duplicate_key") from e
    except ValueError as e:
        raise Rejected("not_json") from e
    if not isinstance(record, dict):
        raise Rejected("not_an_object")
    return record


def _reader(field: Field) -> Callable[[dict[str, Any]], Any]:
    """Reads, checks and types one field of a parsed record (built once per field, run per record)."""
    name, required = field.name, field.required
    missing, invalid = f"missing_{name}", f"invalid_{name}"
    parse, store = field_typing(field)
    constraints = tuple((c.checker(), c.reason or invalid) for c in field.constraints)

    if not constraints and store is same:  # the common case, without the loop and the extra call

        def read_plain(record: dict[str, Any]) -> Any:
            value = record.get(name)
            if value is None:
                if required:
                    raise Rejected(missing)
                return None
            try:
                return parse(value)
            except ValueError:
                raise Rejected(invalid) from None

        return read_plain

    if len(constraints) == 1:
        ((check, reason),) = constraints

        def read_checked(record: dict[str, Any]) -> Any:
            value = record.get(name)
            if value is None:
                if required:
                    raise Rejected(missing)
                return None
            try:
                value = parse(value)
            except ValueError:
                raise Rejected(invalid) from None
            try:
                value = check(value)
            except ValueError:
                raise Rejected(reason) from None
            return store(value)

        return read_checked

    def read(record: dict[str, Any]) -> Any:
        value = record.get(name)
        if value is None:
            if required:
                raise Rejected(missing)
            return None
        try:
            value = parse(value)
        except ValueError:
            raise Rejected(invalid) from None
        for apply, reason in constraints:
            try:
                value = apply(value)
            except ValueError:
                raise Rejected(reason) from None
        return store(value)

    return read


def field_typing(field: Field) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(parse, store) for the field's type: parse raises ValueError for a value of the wrong kind,
    store turns a checked value into what the column holds (or rejects what it cannot hold)."""
    kind = field.type.strip().upper()
    if field.json:
        return compact_json, same
    if kind == "STRING":
        return _string, same
    if kind == "TIMESTAMP":
        return _timestamp, same
    if kind in INTEGER_BITS:
        return _integer(INTEGER_BITS[kind]), same
    if kind == "BOOLEAN":
        return _boolean, same
    if kind in ("DOUBLE", "FLOAT"):
        return _double, same
    decimal = _DECIMAL_TYPE.fullmatch(kind)
    if decimal:
        precision, scale = int(decimal.group(1)), int(decimal.group(2))
        return _number, _decimal_store(precision, scale, f"{field.name}_out_of_range")
    raise ValueError(f"field {field.name}: type {field.type} is not supported (see etl/silver/rules.py)")


def same(value: Any) -> Any:
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str) or not _is_unicode(value):
        raise ValueError
    return value


def _timestamp(value: Any) -> datetime:
    instant = parse_rfc3339(value) if isinstance(value, str) else None
    if instant is None:
        raise ValueError
    return instant


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    most_digits = len(str(high))

    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value):
            digits = value.lstrip("0") or "0"
            if len(digits) > most_digits:  # int() refuses over 4300 digits: check the length first
                raise ValueError
            number = int(digits)
        else:
            raise ValueError
        if not low <= number <= high:
            raise ValueError
        return number

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _double(value: Any) -> float:
    number = _number(value)
    return float(number)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:  # NaN and Infinity arrive as floats (parse_float does not see them)
        raise ValueError
    if not number.is_finite():
        raise ValueError
    return number


def _decimal_store(precision: int, scale: int, out_of_range: str) -> Callable[[Decimal], Decimal]:
    step = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def store(number: Decimal) -> Decimal:
        try:
            rounded = number.quantize(step, rounding=ROUND_HALF_UP)
        except InvalidOperation as e:  # too many digits to quantize: far out of range
            raise Rejected(out_of_range) from e
        if abs(rounded) >= limit:
            raise Rejected(out_of_range)
        return rounded

    return store


def _record_text(line: str) -> str:
    """The record's text: the line itself, or the bytes a raw-bytes line holds, decoded."""
    try:
        raw = raw_bytes_of(line)
    except ValueError as e:  # the line claims raw bytes but is not base64
        raise Rejected("not_json") from e
    if raw is None:
        return line
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected("not_utf8") from e


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise _DuplicateKey
    return record


# Built once (json.loads with arguments builds a decoder per call). Decimals straight from the JSON text:
# 0.1 stays 0.1, never a binary float.
_DECODER = json.JSONDecoder(parse_float=Decimal, object_pairs_hook=_without_duplicate_keys)


def compact_json(value: Any) -> str:
    """`value` as compact JSON, numbers written with the digits they were received with; ValueError for
    NaN or Infinity, which Python's json module reads but JSON does not have."""
    try:
        return _COMPACT.encode(value)  # the json module's C encoder: the usual value has no Decimal
    except TypeError:  # a Decimal (any number with a fraction or exponent): its digits as received
        return _compact_json(value)


def _compact_json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_compact_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, allow_nan=False)


def _is_unicode(text: str) -> bool:
    """False for text with lone surrogates (from escapes such as \\ud800): valid JSON, but not storable."""
    if text.isascii():  # the usual case, and a quick one: a surrogate is not ASCII
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
