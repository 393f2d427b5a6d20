from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from etl.timestamps import _RFC3339, _instant, format_rfc3339, parse_rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01t10:00:00z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T12:30:00+02:30", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T00:30:00-05:00", datetime(2026, 3, 1, 5, 30, tzinfo=UTC)),
        ("2026-03-01T10:00:00.5Z", datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-01T10:00:00.123456789Z", datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parses_rfc3339_to_utc(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01",  # no time
        "2026-03-01T10:00:00",  # no offset
        "2026-03-01 10:00:00Z",  # space instead of T
        "2026-13-01T10:00:00Z",  # month 13
        "2026-02-30T10:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T10:00:60Z",  # leap second
        "2026-03-01T10:00:00+24:00",
        "yesterday",
        "",
        " 2026-03-01T10:00:00Z",
        "\uff12\uff10\uff12\uff16-03-01T10:00:00Z",  # full-width digits
    ],
)
def test_rejects_what_is_not_rfc3339(text: str) -> None:
    assert parse_rfc3339(text) is None


def test_formats_utc_with_z_and_microseconds_only_when_present() -> None:
    assert format_rfc3339(datetime(2026, 3, 1, 10, tzinfo=UTC)) == "2026-03-01T10:00:00Z"
    assert format_rfc3339(datetime(2026, 3, 1, 10, 0, 0, 7, tzinfo=UTC)) == "2026-03-01T10:00:00.000007Z"
    assert parse_rfc3339(format_rfc3339(datetime(2026, 3, 1, 10, 0, 0, 7, tzinfo=UTC))) == datetime(
        2026, 3, 1, 10, 0, 0, 7, tzinfo=UTC
    )


def test_the_quick_path_for_utc_reads_every_instant_as_the_field_by_field_reader() -> None:
    # parse_rfc3339 hands the usual form (T, Z) to datetime.fromisoformat; _instant is the reference.
    generate = random.Random(20261127)
    fractions = ["", *(f".{generate.randrange(10**digits):0{digits}d}" for digits in range(1, 10))]
    for _ in range(5_000):
        text = (
            f"{generate.choice([0, 1, 1970, 2024, 2025, 9999]):04d}-{generate.randrange(14):02d}-"
            f"{generate.randrange(33):02d}T{generate.randrange(26):02d}:{generate.randrange(62):02d}:"
            f"{generate.randrange(62):02d}{generate.choice(fractions)}Z"
        )
        match = _RFC3339.fullmatch(text)
        assert match is not None
        quick, reference = parse_rfc3339(text), _instant(match)
        assert quick == reference, text
        assert quick is None or quick.tzinfo == reference.tzinfo == UTC, text  # type: ignore[union-attr]
