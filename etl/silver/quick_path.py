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
from etl.timestamps import parse_rfc3339

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
        self._known = frozenset(dataset.field_names)
        self._decide = _compiled(dataset, msgspec.json.Decoder(record).decode, self._unknown_fields)

    def __call__(self, line: str) -> tuple[Values, list[str] | None] | None:
        return self._decide(line)

    def _unknown_fields(self, line: str) -> list[str] | None:
        """The names of the record's top-level fields the dataset does not know, in their order; None
        (for the rules) when a key is given twice at any depth or the record nests too deep.

        msgspec keeps one value of a key given twice, so each object holds one key less than the line
        has: counted over the whole record, the keys are as many as the line's `":` only without one.
        """
        if line.count("[") + line.count("{") > MAX_NESTING:  # an unknown field may nest: count it all
            return None
        try:
            record = _GENERIC.decode(line)
        except Exception:  # decoded once already; whatever the reason, the rules decide
            return None
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


def _compiled(
    dataset: Dataset, decode: Callable[[str], Any], unknown_fields: Callable[[str], list[str] | None]
) -> Callable[[str], tuple[Values, list[str] | None] | None]:
    """The quick path of one dataset as a function of its own, written out field by field: the same
    steps as a loop over the fields would take, without the loop's cost on every record (a third of it).

    For orders it reads, in part:

        if "\\" in line or '" ' in line or not line.isprintable(): return None
        try: record = decode(line)
        except Exception: return None
        v0 = record.f0
        ...
        keys = 8 - (v0 is None) - ... - (v7 is None)
        if v7 is not None: keys += bytes(v7).count(b'":')
        ...
        try:
            if v1 is not None: v1 = read1(v1)
            ...
        except Exception: return None
        if v0 is None or ...: return None
        return (v0, ..., v7), unknown
    """
    fields = dataset.fields
    values = [f"v{i}" for i in range(len(fields))]
    readers = {i: read for i, read in enumerate(map(_reader, fields)) if read is not None}
    # A JSON integer of a field without constraints is the column's value as decoded (range-checked).
    final_int = {i for i, f in enumerate(fields) if _is_integer(f) and not f.constraints}
    required = " or ".join(f"{v} is None" for v, f in zip(values, fields, strict=True) if f.required)
    source = [
        "def decide(line):",
        # isprintable: no tab, CR or LF (nor other control characters) anywhere, so only a space can
        # follow a `"` as whitespace.
        """    if "\\\\" in line or '" ' in line or not line.isprintable(): return None""",
        "    try: record = decode(line)",
        "    except Exception: return None",  # not in the quick form (msgspec's errors)
        *(f"    {v} = record.f{i}" for i, v in enumerate(values)),
        # The usual record: every key a declared field with a value. Otherwise (a field the dataset does
        # not know, a declared one given as null, a key twice) the record is looked at once more.
        f"    keys = {len(values)} - " + " - ".join(f"({v} is None)" for v in values),
        *(  # the keys inside JSON-text fields (their nesting is checked in _compact_text)
            f"""    if {v} is not None: keys += bytes({v}).count(b'":')"""
            for v, f in zip(values, fields, strict=True)
            if f.json
        ),
        "    unknown = None",
        """    if line.count('":') != keys:""",
        "        unknown = unknown_fields(line)",
        "        if unknown is None: return None",
        "        unknown = unknown or None",
        "    try:",
        "        pass",
        *(
            f"        if v{i} is not None{f' and v{i}.__class__ is not int' if i in final_int else ''}: "
            f"v{i} = read{i}(v{i})"
            for i in readers
        ),
        "    except Exception: return None",  # a value the rules refuse, or read otherwise: they decide
        f"    if {required or 'False'}: return None",
        f"    return ({', '.join(values)},), unknown",
    ]
    scope: dict[str, Any] = {"decode": decode, "unknown_fields": unknown_fields}
    scope.update((f"read{i}", read) for i, read in readers.items())
    exec("\n".join(source), scope)  # the code written above from the declaration, nothing from input
    decide: Callable[[str], tuple[Values, list[str] | None] | None] = scope["decide"]
    return decide


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
        if finish is None:
            return _compact_text

        def read_json_text(raw: Any) -> Any:  # the text, then the field's constraints on it, as the rules do
            text = _compact_text(raw)
            return None if text is None else finish(text)

        return read_json_text
    if kind in ("STRING", "BOOLEAN"):
        return finish  # type-checked by msgspec
    if kind == "TIMESTAMP":
        return _composed(_instant, *(() if finish is None else (finish,)))
    if kind in INTEGER_BITS:  # a JSON integer range-checked by msgspec, a string read by the rules

        def read_integer(value: Any) -> Any:
            if value.__class__ is not int:
                value = parse(value)
            return value if finish is None else finish(value)

        return read_integer
    if store is not same:  # DECIMAL: the rules' parse of a Decimal gives the same Decimal, then it is stored
        stored = finish or store

        def read_decimal(raw: Any) -> Any:
            value = _json_scalar(raw)
            if value.__class__ is not Decimal:
                if value is None:
                    return None
                value = parse(value)
            return stored(value)

        return read_decimal

    def read_number(raw: Any) -> Any:  # DOUBLE, FLOAT
        value = _json_scalar(raw)
        if value is None:
            return None
        value = parse(value)
        return value if finish is None else finish(value)

    return read_number


def _instant(text: str) -> Any:
    """A timestamp field's text (a JSON string, as msgspec decoded it) as the rules read it."""
    instant = parse_rfc3339(text)
    if instant is None:
        raise ValueError(text)
    return instant


def _is_integer(field: Field) -> bool:
    return not field.json and field.type.strip().upper() in INTEGER_BITS


def _composed(*steps: Step) -> Step | None:
    """The steps applied in order, as one function; None for no step."""
    if len(steps) <= 1:
        return steps[0] if steps else None

    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))

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
