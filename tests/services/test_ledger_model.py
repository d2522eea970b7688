"""A stateful property test: the ledger against a plain in-memory model of the same rules.

Random grants, charges, reservations, settlements, releases, expiries and period changes; after
every step the available credits and the per-period usage must match the model's, and the whole
ledger must pass `verify`. The model is written independently of the domain code: calendar
months from an anchor on the 1st, a list of grants spent in order, a dict of holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from creditgate.domain.errors import Conflict, InsufficientCredits
from creditgate.domain.instants import from_datetime
from creditgate.services import account, audit, ledger, reservations, teams
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from tests.helpers import team_with_key

HOUR = 3_600_000
ANCHOR = from_datetime(datetime(2026, 1, 1, tzinfo=UTC))
PLAN = 3000


def month_start(k: int) -> int:
    year, month = divmod(k, 12)
    return from_datetime(datetime(2026 + year, month + 1, 1, tzinfo=UTC))


@dataclass
class MGrant:
    kind: str
    start: int
    expires: int | None
    remaining: int


@dataclass
class MHold:
    amount: int
    settled: int = 0
    open: bool = True
    expires: int = 0

    def holding(self, now: int) -> int:
        return max(self.amount - self.settled, 0) if self.open and self.expires > now else 0


@dataclass
class Model:
    now: int = ANCHOR
    months: int = 0  # plan grants made for months 0..months-1
    grants: list[MGrant] = field(default_factory=list)
    holds: dict[str, MHold] = field(default_factory=dict)
    usage: dict[int, int] = field(default_factory=dict)

    def roll(self) -> None:
        while month_start(self.months) <= self.now:
            start = month_start(self.months)
            self.grants.append(MGrant("plan", start, month_start(self.months + 1), PLAN))
            self.months += 1

    def live(self) -> list[MGrant]:
        live = [
            g
            for g in self.grants
            if g.start <= self.now and (g.expires is None or self.now < g.expires)
        ]
        return sorted(
            live, key=lambda g: (g.expires is None, g.expires or 0, g.kind != "plan", g.start)
        )

    def held(self) -> int:
        return sum(h.holding(self.now) for h in self.holds.values())

    def available(self) -> int:
        """Live credits (an overdrawn grant is debt against the others) less open holds."""
        return sum(g.remaining for g in self.live()) - self.held()

    def spend(self, amount: int, budget: int) -> None:
        """Take `amount` in spend order from at most `budget` credits; the rest goes negative."""
        left = amount
        for g in self.live():
            take = min(left, max(g.remaining, 0), budget)
            g.remaining -= take
            budget -= take
            left -= take
        if left:
            self.live()[0].remaining -= left
        period = month_start(self.months - 1)
        self.usage[period] = self.usage.get(period, 0) + amount


class LedgerMachine(RuleBasedStateMachine):
    db: Database

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.model.roll()
        # one team per example, in one database: names are unique
        self.team, self.key, _ = team_with_key(
            self.db, ANCHOR, anchor="2026-01-01", name=f"acme-{uuid.uuid4().hex}"
        )
        self.open_ids: list[str] = []

    @rule(
        credits=st.integers(1, 2000),
        days=st.none() | st.integers(1, 60),
        kind=st.sampled_from(["pack", "coupon", "topup"]),
    )
    def grant(self, credits: int, days: int | None, kind: str) -> None:
        expires = None if days is None else self.model.now + days * 24 * HOUR
        ledger.grant(
            self.db, ledger.GrantRequest(self.team.id, credits, kind, expires), self.model.now
        )
        self.model.grants.append(MGrant(kind, self.model.now, expires, credits))

    @rule(credits=st.integers(0, 4000))
    def charge(self, credits: int) -> None:
        fits = credits <= max(self.model.available(), 0)
        try:
            ledger.charge(self.db, ledger.ChargeRequest(self.key, credits), self.model.now)
        except InsufficientCredits:
            assert not fits
            return
        assert fits
        self.model.spend(credits, credits)

    @rule(credits=st.integers(1, 3000), ttl_hours=st.integers(1, 72))
    def reserve(self, credits: int, ttl_hours: int) -> None:
        fits = credits <= max(self.model.available(), 0)
        try:
            view = reservations.reserve(
                self.db, ReserveRequest(self.key, credits, ttl_ms=ttl_hours * HOUR), self.model.now
            )
        except InsufficientCredits:
            assert not fits
            return
        assert fits
        self.model.holds[view.id] = MHold(credits, expires=self.model.now + ttl_hours * HOUR)
        self.open_ids.append(view.id)

    @rule(
        steps=st.lists(
            st.tuples(st.sampled_from(["charge", "reserve"]), st.integers(0, 1500)),
            min_size=2,
            max_size=8,
        )
    )
    def batch(self, steps: list[tuple[str, int]]) -> None:
        """Several operations applied in one transaction against one book (group commit):
        each is decided as if it ran alone, after the ones before it."""
        ops: list[ledger.Operation[object]] = [
            ledger.Charge(ledger.ChargeRequest(self.key, credits), self.model.now)
            if kind == "charge"
            else reservations.Reserve(
                ReserveRequest(self.key, max(credits, 1), ttl_ms=HOUR), self.model.now
            )
            for kind, credits in steps
        ]
        outcomes = ledger.run_all(self.db, ops)
        for (kind, credits), outcome in zip(steps, outcomes, strict=True):
            amount = credits if kind == "charge" else max(credits, 1)
            fits = amount <= max(self.model.available(), 0)
            if not fits:
                assert isinstance(outcome, InsufficientCredits), (kind, amount, outcome)
                continue
            assert not isinstance(outcome, Exception), (kind, amount, outcome)
            assert outcome.remaining_credits == self.model.available() - amount
            if kind == "charge":
                self.model.spend(amount, amount)
            else:
                self.model.holds[outcome.id] = MHold(amount, expires=self.model.now + HOUR)
                self.open_ids.append(outcome.id)

    @precondition(lambda self: bool(self.open_ids))
    @rule(pick=st.integers(0, 10**6), credits=st.integers(0, 3000), final=st.booleans())
    def settle(self, pick: int, credits: int, final: bool) -> None:
        rid = self.open_ids[pick % len(self.open_ids)]
        hold = self.model.holds[rid]
        usable = hold.open and hold.expires > self.model.now
        try:
            reservations.settle(self.db, rid, credits, self.model.now, final=final)
        except Conflict:
            assert not usable
            self.open_ids.remove(rid)
            return
        assert usable
        own = hold.holding(self.model.now)
        free = max(self.model.available(), 0)  # already excludes this hold
        self.model.spend(credits, own + free)
        hold.settled += credits
        if final:
            hold.open = False
            self.open_ids.remove(rid)

    @precondition(lambda self: bool(self.open_ids))
    @rule(pick=st.integers(0, 10**6))
    def release(self, pick: int) -> None:
        rid = self.open_ids.pop(pick % len(self.open_ids))
        reservations.release(self.db, rid, self.model.now)
        self.model.holds[rid].open = False

    @rule(hours=st.sampled_from([1, 5, 24, 24 * 10, 24 * 31, 24 * 70]))
    def advance(self, hours: int) -> None:
        self.model.now += hours * HOUR
        self.model.roll()

    @invariant()
    def balances_and_history_match(self) -> None:
        team = teams.get_team(self.db, self.team.id)
        usage = account.credit_usage(self.db, team, self.model.now)
        assert usage.remaining == self.model.available()
        rows = account.history(self.db, team, False, self.model.now)
        got = {r.start: r.credits for r in rows if r.credits}
        assert got == {k: v for k, v in self.model.usage.items() if v}

    def teardown(self) -> None:
        report = audit.verify(self.db)
        assert report.ok, [d.detail for d in report.differences]


def test_ledger_matches_the_model(db: Database, request: object) -> None:
    big = bool(getattr(request, "config").getoption("--big"))  # noqa: B009
    LedgerMachine.db = db
    machine = LedgerMachine.TestCase
    machine.settings = settings(
        max_examples=200 if big else 25,
        stateful_step_count=40 if big else 20,
        deadline=None,
        # The normal suite replays the same examples every run (CI gates on it); --big explores.
        derandomize=not big,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    machine().runTest()
