"""Billing periods: monthly from the anchor, clamped to month ends, in UTC."""

from __future__ import annotations

import pytest

from creditgate.domain.instants import format_iso, parse_iso
from creditgate.domain.periods import period, period_at, period_start, periods_between


def starts(anchor: str, count: int) -> list[str]:
    a = parse_iso(anchor)
    return [format_iso(period_start(a, i)) for i in range(count)]


def test_anchor_on_the_31st_clamps_to_each_month_end_and_returns_to_the_31st() -> None:
    assert starts("2026-01-31T10:30:00Z", 5) == [
        "2026-01-31T10:30:00.000Z",
        "2026-02-28T10:30:00.000Z",
        "2026-03-31T10:30:00.000Z",
        "2026-04-30T10:30:00.000Z",
        "2026-05-31T10:30:00.000Z",
    ]


def test_anchor_on_the_29th_and_30th_in_february_of_leap_and_common_years() -> None:
    assert starts("2027-12-29T00:00:00Z", 4)[2] == "2028-02-29T00:00:00.000Z"  # leap year
    assert starts("2026-12-29T00:00:00Z", 3)[2] == "2027-02-28T00:00:00.000Z"
    assert starts("2026-01-30T00:00:00Z", 3)[1:] == [
        "2026-02-28T00:00:00.000Z",
        "2026-03-30T00:00:00.000Z",
    ]


def test_anchor_on_leap_day_renews_on_the_28th_then_back_on_the_29th_in_leap_years() -> None:
    got = starts("2028-02-29T12:00:00Z", 13)
    assert got[1] == "2028-03-29T12:00:00.000Z"
    assert got[12] == "2029-02-28T12:00:00.000Z"


def test_period_end_is_the_next_start_and_exclusive() -> None:
    anchor = parse_iso("2026-01-31T00:00:00Z")
    first = period(anchor, True, 0)
    assert first.end == parse_iso("2026-02-28T00:00:00Z")
    boundary = parse_iso("2026-02-28T00:00:00Z")
    at_boundary = period_at(anchor, True, boundary)
    assert at_boundary is not None and at_boundary.index == 1
    just_before = period_at(anchor, True, boundary - 1)
    assert just_before is not None and just_before.index == 0


def test_instant_before_the_anchor_has_no_period() -> None:
    anchor = parse_iso("2026-03-15T00:00:00Z")
    assert period_at(anchor, True, anchor - 1) is None
    assert period_at(anchor, False, anchor - 1) is None


def test_a_plan_without_renewal_has_one_period_that_never_ends() -> None:
    anchor = parse_iso("2026-03-15T00:00:00Z")
    found = period_at(anchor, False, parse_iso("2031-01-01T00:00:00Z"))
    assert found is not None
    assert (found.index, found.start, found.end) == (0, anchor, None)
    with pytest.raises(ValueError):
        period(anchor, False, 1)


@pytest.mark.parametrize(
    ("anchor", "instant", "index"),
    [
        ("2026-01-31T00:00:00Z", "2026-03-30T23:59:59.999Z", 1),
        ("2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", 2),
        ("2026-01-15T08:00:00Z", "2027-01-15T07:59:59.999Z", 11),
        ("2026-01-15T08:00:00Z", "2027-01-15T08:00:00Z", 12),
        ("2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z", 12),
    ],
)
def test_period_at_finds_the_one_period_containing_an_instant(
    anchor: str, instant: str, index: int
) -> None:
    found = period_at(parse_iso(anchor), True, parse_iso(instant))
    assert found is not None
    assert found.index == index
    assert found.contains(parse_iso(instant))


def test_every_instant_lies_in_exactly_one_contiguous_period() -> None:
    anchor = parse_iso("2025-01-31T23:00:00Z")
    previous_end = anchor
    for i in range(30):
        p = period(anchor, True, i)
        assert p.start == previous_end
        assert p.end is not None and p.end > p.start
        previous_end = p.end


def test_periods_between_lists_each_period_once_in_order() -> None:
    anchor = parse_iso("2026-01-10T00:00:00Z")
    got = periods_between(
        anchor, True, parse_iso("2026-02-20T00:00:00Z"), parse_iso("2026-05-01T00:00:00Z")
    )
    assert [format_iso(p.start) for p in got] == [
        "2026-02-10T00:00:00.000Z",
        "2026-03-10T00:00:00.000Z",
        "2026-04-10T00:00:00.000Z",
    ]
