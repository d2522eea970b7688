"""Billing periods.

A renewing plan (monthly or yearly billing) resets credits monthly from the team's anchor: period
k starts at the anchor plus k calendar months, on the anchor's day of month clamped to the month's
last day, at the anchor's time of day. A plan without renewal has one period that never ends.

Guarantees: periods are contiguous (period k ends where k+1 starts), every instant at or after
the anchor lies in exactly one period, and boundaries are computed in UTC.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from creditgate.domain.instants import Instant, from_datetime, to_datetime


@dataclass(frozen=True, slots=True)
class Period:
    index: int
    start: Instant
    end: Instant | None  # exclusive; None for a period that never ends

    def contains(self, instant: Instant) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


def period_start(anchor: Instant, index: int) -> Instant:
    """Start of period `index` (0 = the anchor itself)."""
    first = to_datetime(anchor)
    months = first.year * 12 + (first.month - 1) + index
    year, month = divmod(months, 12)
    month += 1
    day = min(first.day, calendar.monthrange(year, month)[1])
    return from_datetime(first.replace(year=year, month=month, day=day))


def period(anchor: Instant, renews: bool, index: int) -> Period:
    if not renews:
        if index != 0:
            raise ValueError("a plan without renewal has only period 0")
        return Period(0, anchor, None)
    return Period(index, period_start(anchor, index), period_start(anchor, index + 1))


def period_at(anchor: Instant, renews: bool, instant: Instant) -> Period | None:
    """The period containing `instant`, or None before the anchor."""
    if instant < anchor:
        return None
    if not renews:
        return Period(0, anchor, None)
    first, when = to_datetime(anchor), to_datetime(instant)
    # A first guess from the calendar months between them, corrected by at most one step.
    index = max(0, (when.year - first.year) * 12 + when.month - first.month)
    while period_start(anchor, index) > instant:
        index -= 1
    while period_start(anchor, index + 1) <= instant:
        index += 1
    return period(anchor, renews, index)


def periods_between(anchor: Instant, renews: bool, first: Instant, last: Instant) -> list[Period]:
    """Every period from the one containing `first` to the one containing `last`, ascending."""
    start = period_at(anchor, renews, max(first, anchor))
    end = period_at(anchor, renews, last)
    if start is None or end is None:
        return []
    return [period(anchor, renews, i) for i in range(start.index, end.index + 1)]
