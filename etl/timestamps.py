"""RFC 3339 timestamps: strict parsing to UTC and canonical formatting.

Used by the ingestion (to track the watermark) and by the Silver validation, so that both agree on which
`updated_at` values are timestamps at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

# RFC 3339 section 5.6 `date-time`: full date, "T" (any case), time with seconds, an optional fraction,
# and a mandatory offset ("Z" or +hh:mm). Python's fromisoformat alone is looser (dates, no offset).
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # \d is [0-9] only: int() would read other scripts' digits too
)

# The usual form, a date-time in UTC with "T" and "Z": a match of _RFC3339 that needs none of its groups.
_ZULU = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z")


def parse_rfc3339(text: str) -> datetime | None:
    """The instant `text` names, in UTC, or None when it is not an RFC 3339 date-time.

    Fractions beyond microseconds are truncated (Spark and Iceberg store microseconds). Leap seconds
    (:60) are not accepted.
    """
    if _ZULU.fullmatch(text):  # the usual form: the C parser reads it the same, 7 times quicker
        try:
            return datetime.fromisoformat(text)
        except ValueError:  # a day, hour, minute or second out of range
            return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    return _instant(match)


def _instant(match: re.Match[str]) -> datetime | None:
    """The instant of an RFC 3339 match, read field by field (any offset, any case of T and Z)."""
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if not zulu:
            if int(off_h) > 23 or int(off_m) > 59:
                return None
            offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def require_rfc3339(text: str, what: str) -> datetime:
    """The instant `text` names; ValueError naming `what` when it is not an RFC 3339 date-time."""
    instant = parse_rfc3339(text)
    if instant is None:
        raise ValueError(f"{what} must be an RFC 3339 date-time, got {text!r}")
    return instant


def format_rfc3339(instant: datetime) -> str:
    """`instant` in UTC as RFC 3339 with a `Z`, with microseconds only when there are any."""
    utc = instant.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)
