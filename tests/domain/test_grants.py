"""Spend order and allocation of credits over grants."""

from __future__ import annotations

import pytest

from creditgate.domain.errors import InsufficientCredits
from creditgate.domain.grants import Allocation, GrantState, allocate, available

DAY = 86_400_000
NOW = 100 * DAY


def grant(
    gid: str,
    remaining: int,
    *,
    kind: str = "pack",
    start: int = 0,
    expires: int | None = None,
    expired: int = 0,
) -> GrantState:
    return GrantState(gid, kind, start, expires, remaining, expired)


def test_the_grant_expiring_first_is_spent_first_and_never_expiring_last() -> None:
    grants = [
        grant("forever", 100),
        grant("late", 100, expires=NOW + 30 * DAY),
        grant("soon", 100, expires=NOW + 2 * DAY),
    ]
    assert allocate(grants, 250, NOW, NOW) == [
        Allocation("soon", 100, 0),
        Allocation("late", 100, 0),
        Allocation("forever", 50, 0),
    ]


def test_plan_credits_go_before_a_pack_expiring_at_the_same_instant() -> None:
    end = NOW + 10 * DAY
    grants = [grant("pack", 50, expires=end), grant("plan", 50, kind="plan", expires=end)]
    assert allocate(grants, 60, NOW, NOW) == [Allocation("plan", 50, 0), Allocation("pack", 10, 0)]


def test_a_charge_that_does_not_fit_takes_nothing_and_says_what_remains() -> None:
    grants = [grant("a", 30), grant("b", 20, expires=NOW + DAY)]
    with pytest.raises(InsufficientCredits) as caught:
        allocate(grants, 51, NOW, NOW)
    assert (caught.value.required, caught.value.remaining) == (51, 50)


def test_grants_not_active_at_the_charge_time_are_not_spent() -> None:
    grants = [grant("future", 100, start=NOW + DAY), grant("past", 100, expires=NOW - DAY)]
    assert available(grants, NOW, NOW) == 0
    with pytest.raises(InsufficientCredits):
        allocate(grants, 1, NOW, NOW)


def test_a_late_charge_spends_the_expired_remainder_of_its_own_period() -> None:
    old_plan = grant("old", 0, kind="plan", start=0, expires=30 * DAY, expired=400)
    new_plan = grant("new", 500, kind="plan", start=30 * DAY, expires=60 * DAY)
    parts = allocate([old_plan, new_plan], 150, 29 * DAY, 31 * DAY)
    assert parts == [Allocation("old", 150, 150)]


def test_holds_reduce_what_live_grants_can_give() -> None:
    grants = [grant("a", 100)]
    assert available(grants, NOW, NOW, held=70) == 30
    with pytest.raises(InsufficientCredits):
        allocate(grants, 31, NOW, NOW, held=70)
    assert allocate(grants, 30, NOW, NOW, held=70) == [Allocation("a", 30, 0)]


def test_overage_puts_the_excess_on_the_first_live_grant() -> None:
    grants = [grant("plan", 10, kind="plan", expires=NOW + DAY), grant("pack", 5)]
    parts = allocate(grants, 25, NOW, NOW, allow_overage=True)
    assert parts == [Allocation("plan", 20, 0), Allocation("pack", 5, 0)]
    assert sum(p.amount for p in parts) == 25


def test_overage_needs_a_live_grant_to_carry_it() -> None:
    expired = grant("old", 0, kind="plan", expires=NOW - DAY, expired=5)
    with pytest.raises(InsufficientCredits):
        allocate([expired], 10, NOW - 2 * DAY, NOW, allow_overage=True)


def test_a_zero_charge_allocates_nothing() -> None:
    assert allocate([grant("a", 0)], 0, NOW, NOW) == []
