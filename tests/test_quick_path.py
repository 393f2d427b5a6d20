"""The quick path of validation (etl/silver/quick_path.py) against its oracle, the rules alone: for any
line, the same typed values, reason and unknown fields, whichever path decided it."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from datasets.customers import DATASET as CUSTOMERS
from datasets.orders import DATASET as ORDERS
from etl.bronze.layout import raw_bytes_line
from etl.dataset import Check, Dataset, Field, Length, OneOf, Pattern, Range, Source
from etl.json_nesting import MAX_NESTING
from etl.silver import quick_path
from etl.silver.quick_path import QuickPath
from etl.silver.records import check_batches
from etl.silver.rules import Rejected, Validator
from local.sample_api.customers import CustomerSource
from local.sample_api.generator import SampleSource

# A dataset declaring every type and constraint the rules know, field names a Python class could not take.
EVERY_TYPE = Dataset(
    name="every_type",
    comment="Every type and constraint",
    source=Source(path="/v1/every"),
    fields=(
        Field("id", "INT", "Key", constraints=(Range(minimum=-5, maximum=10**6),)),
        Field("small", "SMALLINT", "Small", required=False),
        Field("tiny", "TINYINT", "Tiny", required=False),
        Field("big", "BIGINT", "Big", required=False),
        Field("flag", "BOOLEAN", "Flag", required=False),
        Field(
            "ratio",
            "DOUBLE",
            "Ratio",
            required=False,
            constraints=(Range(minimum=0, maximum=Decimal("1.5")),),
        ),
        Field(
            "third", "DOUBLE", "Inexact bound", required=False, constraints=(Range(maximum=Decimal("0.3")),)
        ),
        Field("single", "FLOAT", "Float", required=False),
        Field(
            "price",
            "DECIMAL(6,3)",
            "Price",
            required=False,
            constraints=(Range(minimum=Decimal("-1.5"), maximum=Decimal("999.9994"), reason="price_range"),),
        ),
        Field(
            "label",
            "STRING",
            "Label",
            required=False,
            constraints=(OneOf(values=("ALPHA", "BETA"), fold="upper"),),
        ),
        Field(
            "code",
            "STRING",
            "Code",
            required=False,
            constraints=(Pattern(regex=r"[A-Z]{2}\d+", fold="lower"),),
        ),
        Field("mail", "STRING", "Mail", required=False, constraints=(Pattern(regex="[^@]+@[^@]+"),)),
        Field("note", "STRING", "Note", required=False, constraints=(Length(minimum=1, maximum=5),)),
        Field(
            "checked", "STRING", "Checked", required=False, constraints=(Check(test=lambda v: v != "bad"),)
        ),
        Field("class", "STRING", "A Python keyword", required=False),
        Field("at", "TIMESTAMP", "Version"),
        Field("payload", "STRING", "JSON", required=False, json=True),
    ),
    keys=("id",),
    version="at",
)

TIMESTAMPS = [
    "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T10:00:00Z", "2024-01-01T24:00:00Z",
    "2024-06-30T23:59:60Z", "2024-01-01T00:00:00+02:00", "2024-01-01T00:00:00-05:30",
    "2024-01-01T00:00:00+23:59", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00.1234567Z",
    "2024-01-01T00:00:00.9999999Z", "2024-01-01T00:00:00.1Z", "2024-01-01T00:00:00.Z", "2024-01-01t00:00:00z",
    "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-01-01 00:00:00Z",
    "2024-01-01T00:00Z", "2024-1-01T00:00:00Z", "2024-01-01T00:00:00+0200", "2024-01-01T00:00:00",
]  # fmt: skip


class Token:
    """A JSON token written into the record's text as is (json.dumps would write it otherwise)."""

    def __init__(self, text: str) -> None:
        self.text = text


TOKENS = [
    "-0", "-0.0", "0.0", "1E5", "1e-7", "2e0", "0.0000001", "0.000001", "1.50", "100", "-1", "007", "1.",
    ".5", "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "2.0005", "999.9995", "999.9994", "-1.5",
    "-1.5001", "1.50000000000000000001", "0.30000000000000001", "123456789012345678901234567890",
    "32767", "32768", "-32769", "127", "128", "2147483647", "2147483648", "9223372036854775807",
    "9223372036854775808", "true", "false", "null", '"a"', '" 7 "', '"1_000"', '"NaN"', "[]", "{}", "[1, 2]",
    '{"a": 1}', '{"a":1,"a":2}', '[{"a":1,"b":{"a":2}}]', '[{"k":1,"k":1}]', '[{"x":-0}]', '[{"x":1E2}]',
    '[{"x":0.10}]', '[{"x":"\\u00e9"}]', '["\x7f"]', '["é"]', '[{"a" :1}]', "[" * 70 + "]" * 70,
]  # fmt: skip
VALUES: list[Any] = [
    0, 1, -1, 5, -6, 1_000_000, 1_000_001, 2**15, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30,
    "0", "-0", "007", "0042", " 7", "1e3", "12.345", "-1.5", ".5", "5.", "+1", "2.0005", "999.9995", "0.1",
    "abc", "", "é", "a\\b", 'a"b', "a\nb", "\t", "a b", "ab", "AB", "Ab", "CD12", "cd12", "alpha", "Beta",
    "İ", "ß", "a@b", "a@@b", "bad", "toolong", "\ud800", "💡", True, False, None, [], {}, [1, 2], {"a": 1},
    [{"sku": "X", "q": 1}], 12.345, 2.005, 0.1, 1.5, 1e300, *TIMESTAMPS, *(Token(t) for t in TOKENS),
]  # fmt: skip


def write(record: dict[str, Any], generate: random.Random) -> str:
    """The record as a source may send it: compact or spaced, escaped or not, tokens as given."""
    tokens: dict[str, str] = {}

    def placeholder(value: Any) -> Any:
        if isinstance(value, Token):
            key = f"@@token{len(tokens)}@@"
            tokens[key] = value.text
            return key
        return value

    separators = generate.choice([(",", ":"), (",", ":"), (", ", ": "), (",", " : ")])
    text = json.dumps(
        {name: placeholder(value) for name, value in record.items()},
        separators=separators,
        ensure_ascii=generate.random() < 0.3,
    )
    if not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text):
        text = json.dumps(json.loads(text), separators=separators)  # a lone surrogate only escaped
    for key, token in tokens.items():
        text = text.replace(json.dumps(key), token)
    return text


def mutate(line: str, fields: list[str], generate: random.Random) -> str:
    """The record of `line` with one to three fields changed, dropped, nulled or added, or its text broken."""
    record: dict[str, Any] = json.loads(line)
    for _ in range(generate.randint(1, 3)):
        name = generate.choice([*fields, "extra"])
        roll = generate.random()
        if roll < 0.1:
            record.pop(name, None)
        elif roll < 0.15:
            record[name] = None
        else:
            record[name] = generate.choice(VALUES)
    text = write(record, generate)
    roll = generate.random()
    if roll < 0.05:  # a key given twice
        first = next(iter(record), "x")
        text = text[:-1] + f',"{first}":1' + "}"
    elif roll < 0.07:
        text = " " + text + "\t"
    elif roll < 0.09:
        text = text + "x"
    elif roll < 0.11:
        text = text[: len(text) // 2]
    elif roll < 0.12:
        text = "[" + text + "]"
    return text


def every_type_line(generate: random.Random) -> str:
    record = {
        "id": generate.randint(-5, 1000),
        "small": generate.randint(-100, 100),
        "tiny": 7,
        "big": 2**40,
        "flag": generate.random() < 0.5,
        "ratio": 0.25,
        "single": 1.5,
        "price": "12.3456",
        "label": "alpha",
        "code": "AB12",
        "mail": "x@y",
        "note": "ok",
        "class": "first",
        "at": "2026-01-01T00:00:00Z",
        "payload": [{"sku": "X", "quantity": 1}],
    }
    return json.dumps(record, separators=(",", ":"))


def sample_order_lines(count: int) -> list[str]:
    source = SampleSource(seed=5, initial_orders=count, batches=2, change_fraction=0.3)
    return [text for _, _, text in source.records()]


def sample_customer_lines(count: int) -> list[str]:
    source = CustomerSource(SampleSource(seed=5, initial_orders=count, batches=3, change_fraction=0.3))
    return [
        source.record_text(b, s) for b in range(1, source.batches + 1) for s in range(source.batch_size(b))
    ]


def checked(lines: list[str], dataset: Dataset, quick: bool) -> list[dict[str, Any]]:
    """The rows check_batches gives for the lines, in batches of 500."""
    batches = (
        pa.RecordBatch.from_pydict({"raw_record": lines[at : at + 500]}) for at in range(0, len(lines), 500)
    )
    return [row for batch in check_batches(dataset, quick=quick)(batches) for row in batch.to_pylist()]


def assert_quick_equals_rules(lines: list[str], dataset: Dataset) -> None:
    quick, rules = checked(lines, dataset, quick=True), checked(lines, dataset, quick=False)
    assert len(quick) == len(rules) == len(lines)
    for line, ours, oracle in zip(lines, quick, rules, strict=True):
        # repr tells -0.0 from 0.0 and Decimal("1.0") from Decimal("1.00").
        assert repr(ours) == repr(oracle), line


def quickly_decided(lines: list[str], dataset: Dataset) -> int:
    decide = QuickPath(dataset)
    return sum(decide(line) is not None for line in lines)


@pytest.mark.parametrize(
    ("dataset", "base_lines", "seed"),
    [
        (ORDERS, lambda: sample_order_lines(100), 1),
        (CUSTOMERS, lambda: sample_customer_lines(150), 2),
        (EVERY_TYPE, lambda: [every_type_line(random.Random(n)) for n in range(60)], 3),
    ],
    ids=["orders", "customers", "every_type"],
)
def test_the_quick_path_and_the_rules_give_the_same_rows_for_mutated_records(
    dataset: Dataset, base_lines: Any, seed: int
) -> None:
    generate = random.Random(seed)
    bases: list[str] = base_lines()
    fields = list(dataset.field_names)
    mutated = [mutate(generate.choice(bases), fields, generate) for _ in range(4_000)]
    assert_quick_equals_rules([*bases, *mutated], dataset)
    # The comparison means something only if the quick path decides mutated records too, and the rules
    # the most of them.
    assert 100 < quickly_decided(mutated, dataset) < len(mutated) / 2


@pytest.mark.parametrize(
    "line",
    [
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":'
        + "[" * (MAX_NESTING + 1)
        + "]" * (MAX_NESTING + 1)
        + "}",
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":' + "[" * MAX_NESTING + "]" * MAX_NESTING + "}",
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":[' + ",".join(["1"] * 3000) + "]}",
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":' + "9" * 5000 + "}",
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":{"a":1,"a":1}}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":[{"a":1},{"b":2,"b":2}]}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":{"a":{"b":1,"b":1}}}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","payload":"\\u0041"}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","note":"\\ud800"}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","id":1}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","i\\u0064":2}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","id" :2}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","id"\t:2}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","note":"a\\"b"}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","note":"x\x7f"}',
        '{"id":1,"at":"2026-01-01T00:00:00Z"}\r',
        '{"id":1,"at":"2026-01-01T00:00:00Z"} {"id":2}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","price":null,"flag":null,"payload":null}',
        '{"id":null,"at":"2026-01-01T00:00:00Z"}',
        '{"at":"2026-01-01T00:00:00Z"}',
        '{"id":"12","at":"2026-01-01T00:00:00Z","big":"0042"}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","price":true}',
        '{"id":1,"at":"2026-01-01T00:00:00Z","price":[1]}',
        '\ufeff{"id":1,"at":"2026-01-01T00:00:00Z"}',
        "{'id':1,'at':'2026-01-01T00:00:00Z'}",
        raw_bytes_line(b'{"id":1,"at":"2026-01-01T00:00:00Z"}'),
        raw_bytes_line(b"\xff\xfe"),
        "",
    ],
)
def test_unusual_lines_give_the_same_row(line: str) -> None:
    assert_quick_equals_rules([line], EVERY_TYPE)


@pytest.mark.parametrize(
    ("dataset", "lines"),
    [(ORDERS, lambda: sample_order_lines(400)), (CUSTOMERS, lambda: sample_customer_lines(400))],
    ids=["orders", "customers"],
)
def test_the_quick_path_decides_every_valid_sample_record(dataset: Dataset, lines: Any) -> None:
    # A regression to the rules alone would still give the right rows: this shows the quick path does the
    # work, records with a field the dataset does not know included.
    validate = Validator(dataset)
    valid = [line for line in lines() if accepted(line, validate)]
    assert len(valid) > 0.8 * len(lines())
    assert any(not set(json.loads(line)) <= set(dataset.field_names) for line in valid)
    assert quickly_decided(valid, dataset) == len(valid)


def test_the_quick_path_gives_the_typed_values_of_the_rules() -> None:
    line = (
        '{"order_id":"0042","customer_id":"C1","status":"PAID","amount":"2.005","currency":"eur",'
        '"created_at":"2026-03-01T10:00:00+02:00","updated_at":"2026-03-02T10:00:00.5Z",'
        '"items":[{"sku":"A","q":1.10}]}'
    )
    decided = QuickPath(ORDERS)(line)
    assert decided is not None
    values, unknown = decided
    assert values == Validator(ORDERS)(line)
    assert (values[0], values[2], values[3], values[4]) == (42, "paid", Decimal("2.01"), "EUR")
    assert unknown is None
    with_unknown = QuickPath(ORDERS)(line[:-1] + ',"channel":"web","note":{"a":[1]}}')
    assert with_unknown is not None
    assert with_unknown == (values, ["channel", "note"])


def test_a_json_text_field_is_held_to_its_constraints_as_the_rules_hold_it() -> None:
    short = Dataset(
        name="short",
        comment="A JSON-text field with a constraint",
        source=Source(path="/v1/short"),
        fields=(
            Field("id", "INT", "Key"),
            Field("payload", "STRING", "JSON", required=False, json=True, constraints=(Length(maximum=5),)),
        ),
        keys=("id",),
        version="id",
    )
    lines = ['{"id":1,"payload":[1,2]}', '{"id":2,"payload":[1,2,3]}', '{"id":3,"payload":null}']
    assert_quick_equals_rules(lines, short)
    assert [row["reason"] for row in checked(lines, short, quick=True)] == [None, "invalid_payload", None]
    assert quickly_decided(lines, short) == 2


def test_without_msgspec_every_record_takes_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = sample_order_lines(20)
    with_quick = checked(lines, ORDERS, quick=True)
    monkeypatch.setattr(quick_path, "msgspec", None)
    assert not quick_path.available()
    with pytest.raises(RuntimeError, match="msgspec"):
        QuickPath(ORDERS)
    assert checked(lines, ORDERS, quick=True) == with_quick


def accepted(line: str, validate: Validator) -> bool:
    try:
        validate(line)
    except Rejected:
        return False
    return True
