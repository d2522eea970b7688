"""Grants and the order credits are spent in.

A grant is credits that arrive: a period's plan credits (expire at the period's end) or a pack,
coupon or top-up (expire at a date, or never). A charge at instant `at` may spend only grants
active at `at` (start <= at < expiry), in a fixed order: the grant that expires first goes first,
plan credits before others at the same expiry, then older before newer.

A late charge (recorded after the grant it belongs to expired) spends that grant's expired
remainder: the expiry is partly reversed and the credits are charged instead, so the balance ends
where it would have been had the charge arrived on time, and the current period is not touched.

Guarantees of `allocate`: the parts sum to the amount; no part takes more than its grant had;
without overage nothing is allocated unless everything fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creditgate.domain.errors import InsufficientCredits
from creditgate.domain.instants import Instant

GrantKind = Literal["plan", "pack", "coupon", "topup"]
GRANT_KINDS: tuple[GrantKind, ...] = ("plan", "pack", "coupon", "topup")


@dataclass(frozen=True, slots=True)
class GrantState:
    id: str
    kind: str
    starts_at: Instant
    expires_at: Instant | None
    remaining: int  # unspent and not expired; negative only through overage
    expired_amount: int  # credits recorded as expired and not reinstated since
    expired_at: Instant | None = None  # when its expiry was recorded; None: not yet
    amount: int = 0  # credits it brought

    def active_at(self, instant: Instant) -> bool:
        return self.starts_at <= instant and (self.expires_at is None or instant < self.expires_at)

    def expired_by(self, instant: Instant) -> bool:
        return self.expires_at is not None and self.expires_at <= instant


@dataclass(frozen=True, slots=True)
class Allocation:
    grant_id: str
    amount: int  # credits taken from the grant, > 0
    reinstated: int  # of which came from the grant's expired remainder


def spend_order(grant: GrantState) -> tuple[int, Instant, int, Instant, str]:
    never = 1 if grant.expires_at is None else 0
    return (
        never,
        grant.expires_at or 0,
        0 if grant.kind == "plan" else 1,
        grant.starts_at,
        grant.id,
    )


def spendable(grant: GrantState, now: Instant) -> int:
    """What a charge may still take from the grant at `now`."""
    if grant.expired_by(now):
        return max(grant.expired_amount, 0)
    return max(grant.remaining, 0)


def live_total(grants: list[GrantState], at: Instant, now: Instant) -> int:
    """The live grants' remaining credits, overdrawn ones counting as debt against the rest."""
    return sum(g.remaining for g in grants if g.active_at(at) and not g.expired_by(now))


def available(grants: list[GrantState], at: Instant, now: Instant, held: int = 0) -> int:
    """Credits a charge at `at` may spend: grants active then, less what open holds keep aside."""
    late = sum(spendable(g, now) for g in grants if g.active_at(at) and g.expired_by(now))
    return late + max(live_total(grants, at, now) - held, 0)


def allocate(
    grants: list[GrantState],
    amount: int,
    at: Instant,
    now: Instant,
    *,
    held: int = 0,
    allow_overage: bool = False,
) -> list[Allocation]:
    """Split `amount` over the grants active at `at`, in spend order.

    With `allow_overage`, what does not fit is put on the first live grant (its remaining goes
    negative); without it, or with no live grant to carry it, InsufficientCredits is raised.
    """
    if amount < 0:
        raise ValueError("amount must not be negative")
    fits = available(grants, at, now, held)
    if amount > fits and not allow_overage:
        raise InsufficientCredits(required=amount, remaining=fits)
    ordered = sorted((g for g in grants if g.active_at(at)), key=spend_order)
    parts: list[Allocation] = []
    left = amount
    live_budget = max(live_total(ordered, at, now) - held, 0)
    for grant in ordered:
        if left == 0:
            break
        late = grant.expired_by(now)
        take = min(left, spendable(grant, now))
        if not late:
            take = min(take, live_budget)
            live_budget -= take
        if take > 0:
            parts.append(Allocation(grant.id, take, take if late else 0))
            left -= take
    if left > 0:
        carrier = next((g for g in ordered if not g.expired_by(now)), None)
        if carrier is None:
            raise InsufficientCredits(required=amount, remaining=fits)
        parts = _merge(parts, Allocation(carrier.id, left, 0))
    return parts


def _merge(parts: list[Allocation], extra: Allocation) -> list[Allocation]:
    for i, part in enumerate(parts):
        if part.grant_id == extra.grant_id:
            merged = Allocation(part.grant_id, part.amount + extra.amount, part.reinstated)
            return [*parts[:i], merged, *parts[i + 1 :]]
    return [*parts, extra]
