"""The quick path of validation: a record in the usual form decoded and typed in one pass of msgspec (C).

The rules (rules.py) read a record with Python's json module and check it field by field: about 10 µs a
record, most of the Silver job's full load. Most records a source sends are plain: compact JSON text
without escapes, every field of the declared JSON type. msgspec decodes such a line straight into the
dataset's fields (integers range-checked, strings and booleans type-checked) in about 1 µs; what is left in
Python is each field's own checks, by the same functions the rules use.

The quick path answers only when it can prove the rules would accept the record with the same values; any
doubt returns None and the rules decide (and name the reason), so the results never depend on which path
took a record. The proof, for a line that is:
- free of backslashes: every `"` opens or closes a string, and no key or string is escaped (so `\\u0041`,
  lone surrogates and keys written two ways all go to the rules);
- free of a `"` followed by whitespace: every key is followed straight by its `:`, so the line's count
  of `":` is its number of keys at every depth;
- nested at most MAX_NESTING deep, the record's own object included (brackets counted in its JSON-text
  fields, the only declared ones that can hold arrays and objects, or in the whole line when it has fields
  the dataset does not know);
- decoded by msgspec into the declared fields: valid JSON (msgspec and the json module refuse the same
  malformed text, and msgspec refuses NaN and Infinity, which the json module reads), an object, each
  declared field of the JSON type its rules take first;
- holding each key once: the count of `":` is the declared fields present plus the keys inside JSON-text
  fields (checked for duplicates on their own: see `_compact_text`), or else the keys of every object of
  the record decoded as a whole (which also names the fields the dataset does not know, as the rules do);
and whose values then pass the rules' own parse, constraint and store functions.

A field's value reaches those functions as the json module would give it: a number as an int, or a
Decimal of its text when it has a fraction or exponent (`parse_float=Decimal`), a string as is.

msgspec is optional: without it every record takes the rules' path, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

from etl.dataset import Dataset, Field
from etl.json_nesting import MAX_NESTING
from etl.silver.rules import INTEGER_BITS, field_typing, same

try:
    import msgspec
except ImportError:  # pragma: no cover - the Glue job may run without it (see README, "Versions")
    msgspec = None  # type: ignore[assignment]

Values = tuple[Any, ...]
# One step of a field's reading: its value in, its value out, ValueError (or any error) for the rules to see.
Step = Callable[[Any], Any]


class QuickPath:
    """`quick(line)`: the typed values of the dataset's fields and the names of the record's fields the
    dataset does not know (None for none), as the rules would give them, or None when the line is not in
    the form the quick path proves (the rules then decide it)."""

    def __init__(self, dataset: Dataset) -> None:
        if msgspec is None:
            raise RuntimeError("the quick path needs msgspec")
        fields = dataset.fields
        # Attributes f0, f1...: a field's name need not be a Python identifier.
        record = msgspec.defstruct(
            "Record",
            [(f"f{i}", _decoded_type(f), None) for i, f in enumerate(fields)],
            rename={f"f{i}": f.name for i, f in enumerate(fields)},
        )
        self._decode = msgspec.json.Decoder(record).decode
        self._astuple = msgspec.structs.astuple
        self._known = frozenset(dataset.field_names)
        self._width = len(fields)
        self._required = tuple(i for i, f in enumerate(fields) if f.required)
        self._readers = tuple((i, read) for i, read in enumerate(map(_reader, fields)) if read is not None)
        self._json_text = tuple(i for i, f in enumerate(fields) if f.json)

    def __call__(self, line: str) -> tuple[Values, list[str] | None] | None:
        # isprintable: no tab, CR or LF (nor other control characters) anywhere, so only a space can
        # follow a `"` as whitespace.
        if "\\" in line or '" ' in line or not line.isprintable():
            return None
        try:
            values = list(self._astuple(self._decode(line)))
        except Exception:  # not in the quick form (msgspec's DecodeError and ValidationError)
            return None
        # The usual record: every key a declared field with a value. Otherwise (a field the dataset does
        # not know, a declared one given as null, a key twice) the record is looked at once more.
        keys = self._width - values.count(None)
        for i in self._json_text:
            if values[i] is not None:
                keys += bytes(values[i]).count(b'":')  # its nesting is checked in _compact_text
        unknown = None
        if line.count('":') != keys:
            found = self._unknown_fields(line)
            if found is None:
                return None
            unknown = found or None
        try:
            for i, read in self._readers:
                value = values[i]
                if value is not None:
                    values[i] = read(value)
        except Exception:  # a value the rules refuse, or read otherwise: they decide
            return None
        for i in self._required:
            if values[i] is None:
                return None
        return tuple(values), unknown

    def _unknown_fields(self, line: str) -> list[str] | None:
        """The names of the record's top-level fields the dataset does not know, in their order; None
        (for the rules) when a key is given twice at any depth or the record nests too deep.

        msgspec keeps one value of a key given twice, so each object holds one key less than the line
        has: counted over the whole record, the keys are as many as the line's `":` only without one.
        """
        if line.count("[") + line.count("{") > MAX_NESTING:  # an unknown field may nest: count it all
            return None
        record = _GENERIC.decode(line)
        if _keys(record) != line.count('":'):
            return None
        return [name for name in record if name not in self._known]


def _keys(value: Any) -> int:
    """How many keys the objects in a decoded JSON value hold, at every depth."""
    if isinstance(value, dict):
        return len(value) + sum(_keys(item) for item in value.values())
    if isinstance(value, list):
        return sum(_keys(item) for item in value)
    return 0


def available() -> bool:
    """Whether the quick path can run here (msgspec is installed)."""
    return msgspec is not None


def _decoded_type(field: Field) -> Any:
    """What msgspec decodes the field as: the one JSON type the rules take straight, or the raw JSON
    text where the rules' reading depends on how the value was written."""
    kind = field.type.strip().upper()
    if field.json or not (kind in INTEGER_BITS or kind in ("STRING", "TIMESTAMP", "BOOLEAN")):
        return msgspec.Raw  # JSON text, numbers (DECIMAL, DOUBLE, FLOAT)
    if kind in INTEGER_BITS:  # digits in a string too: the rules read those
        bits = INTEGER_BITS[kind]
        return Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)] | str | None
    if kind == "BOOLEAN":
        return bool | None
    return str | None  # STRING, and TIMESTAMP as its text


def _reader(field: Field) -> Step | None:
    """The Python left to do for a present, non-null field decoded as `_decoded_type` says: the rules'
    own functions (None: msgspec's value is the column's). A JSON null in raw text reads as None."""
    kind = field.type.strip().upper()
    parse, store = field_typing(field)
    finish = _composed(*(c.checker() for c in field.constraints), *(() if store is same else (store,)))
    if field.json:
        return _compact_text
    if kind in ("STRING", "BOOLEAN"):
        return finish  # type-checked by msgspec
    if kind == "TIMESTAMP":
        return _composed(parse, *(() if finish is None else (finish,)))
    if kind in INTEGER_BITS:  # a JSON integer range-checked by msgspec, a string read by the rules

        def read_integer(value: Any) -> Any:
            if value.__class__ is not int:
                value = parse(value)
            return value if finish is None else finish(value)

        return read_integer
    exact = store is not same  # DECIMAL: the rules' parse of a Decimal gives the same Decimal

    def read_number(raw: Any) -> Any:
        value = _json_scalar(raw)
        if value is None:
            return None
        if not (exact and value.__class__ is Decimal):
            value = parse(value)
        return value if finish is None else finish(value)

    return read_number


def _composed(*steps: Step) -> Step | None:
    """The steps applied in order, as one function; None for no step."""
    if len(steps) <= 1:
        return steps[0] if steps else None

    def apply(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return apply


def _json_scalar(raw: Any) -> Any:
    """A raw JSON number or string as the json module reads it (parse_float=Decimal), None for null;
    anything else (true, an array, an object) goes to the rules."""
    text = bytes(raw).decode()
    first = text[0]
    if first == '"':
        return text[1:-1]  # no backslash in the line: the string's characters as written
    if first == "-" or first.isdigit():
        return Decimal(text) if "." in text or "e" in text or "E" in text else int(text)
    if text == "null":
        return None
    raise ValueError(text)


def _compact_text(raw: Any) -> str | None:
    """A JSON-text field's value as the rules store it (compact_json), when the value already is that
    text: printable ASCII, every key once, numbers written as Python writes them. Anything else goes to
    the rules, which write it."""
    text = bytes(raw)
    if text == b"null":
        return None
    if not text.isascii() or b"\x7f" in text or text.count(b"[") + text.count(b"{") >= MAX_NESTING:
        raise ValueError("not in the quick form")  # (>=: the record's object is one level more)
    if _ENCODE(_GENERIC.decode(text)) != text:
        raise ValueError("not already compact")
    return text.decode()


if msgspec is not None:
    # Decimals from the text as the json module makes them, and written back with str(): a value comes
    # back the same text only when it has no key twice and its numbers and spacing are Python's.
    _GENERIC = msgspec.json.Decoder(float_hook=Decimal)
    _ENCODE = msgspec.json.Encoder(decimal_format="number").encode
