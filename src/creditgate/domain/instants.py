"""Instants: UTC milliseconds since the epoch, the only time type the ledger stores.

Integers compare, sort and store identically in SQLite and PostgreSQL, and can never carry a
local time zone by accident. Conversions to and from text happen only at the edges.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

Instant = int  # milliseconds since 1970-01-01T00:00:00Z

MS_PER_SECOND = 1_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidInstant(ValueError):
    """A text that is not an explicit UTC (or offset) timestamp."""


def from_datetime(moment: datetime) -> Instant:
    if moment.tzinfo is None:
        raise InvalidInstant("timestamps must carry a time zone (use Z for UTC)")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MS_PER_SECOND + delta.microseconds // 1_000


def to_datetime(instant: Instant) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=instant)


def now() -> Instant:
    return time.time_ns() // 1_000_000


def format_iso(instant: Instant) -> str:
    """`2026-08-01T00:00:00.000Z`: the wire format of every timestamp."""
    return to_datetime(instant).isoformat(timespec="milliseconds")[:-6] + "Z"  # drop +00:00


def parse_iso(text: str) -> Instant:
    """Parse ISO 8601 with an explicit zone; a bare date means midnight UTC of that day."""
    text = text.strip()
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidInstant(f"not a valid date: {text!r}") from exc
        return from_datetime(datetime(day.year, day.month, day.day, tzinfo=UTC))
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise InvalidInstant(f"not an ISO 8601 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise InvalidInstant(f"timestamp {text!r} has no time zone; add Z for UTC")
    return from_datetime(moment)


def floor_hour(instant: Instant) -> Instant:
    return instant - instant % MS_PER_HOUR


def floor_day(instant: Instant) -> Instant:
    return instant - instant % MS_PER_DAY
