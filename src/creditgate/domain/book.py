"""A team's book: its credit state under the team's lock, the rules that move credits, and the
changes they make, to be written once.

Every credit movement — grant, charge, hold, settlement, release, expiry, period rollover — is a
method here, and each one checks everything before it changes anything: a refused operation
raises and leaves the book as it was, so the operations before and after it in the same batch
are unaffected. Storage loads a book (storage/book.py) and writes its `changes`; the ledger
service (services/ledger.py) runs operations against it in named steps.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import orjson

from creditgate.domain import grants as spend
from creditgate.domain.alerts import AlertRule, EventType, TopUpRule, cap_rule_id, holds
from creditgate.domain.errors import (
    Conflict,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
)
from creditgate.domain.grants import GrantState
from creditgate.domain.ids import new_id
from creditgate.domain.instants import MS_PER_DAY, Instant, floor_day, floor_hour, format_iso
from creditgate.domain.periods import Period, period, period_at
from creditgate.domain.plans import Plan
from creditgate.domain.reservations import HoldStatus, Reservation
from creditgate.domain.teams import ApiKey, Team

SORTED = orjson.OPT_SORT_KEYS


class EntryKind(StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    EXPIRY = "expiry"
    EXPIRY_REVERSAL = "expiry_reversal"


@dataclass(frozen=True, slots=True)
class Details:
    """What a charge says about the work it pays for."""

    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None


NO_DETAILS = Details()


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an entry: the credits a movement moves on one grant (or none)."""

    movement_id: str
    line: int
    kind: EntryKind
    amount: int  # signed: + adds credits, - spends them
    grant_id: str | None
    occurred_at: Instant
    recorded_at: Instant
    key_id: str | None = None
    period_start: Instant | None = None
    details: Details = NO_DETAILS
    note: str | None = None
    reservation_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewGrant:
    id: str
    team_id: str
    kind: str
    amount: int
    starts_at: Instant
    expires_at: Instant | None
    period_start: Instant | None
    note: str | None
    created_at: Instant


@dataclass(frozen=True, slots=True)
class Record:
    """A stored idempotency record: the content's hash and the first answer."""

    request_hash: str
    movement_id: str
    response: str


@dataclass(frozen=True, slots=True)
class NewEvent:
    seq: int  # the team's events in order: 1, 2, ...
    id: str  # the webhook-id
    type: EventType
    payload: str  # the JSON body a webhook sends


@dataclass(frozen=True, slots=True)
class Fired:
    rule_id: str  # a rule's id, or cap_rule_id(key)
    period_start: Instant
    event_seq: int


@dataclass(frozen=True, slots=True)
class Watch:
    """What alerting needs: the rules (with the period each last fired in), the keys' cap
    alerts' last periods, the team's usage of the current (and any later) period."""

    rules: list[tuple[AlertRule, Instant | None]] = field(default_factory=list)
    cap_fired: dict[str, Instant | None] = field(default_factory=dict)
    period_used: dict[Instant, int] = field(default_factory=dict)
    event_seq: int = 0
    # top-up rules, with the period their count is of and the count
    topups: list[tuple[TopUpRule, Instant | None, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HoldTotals:
    """The team's open reservations, as the book needs them."""

    held: int = 0  # credits held by open, unexpired reservations
    by_key: dict[str, int] = field(default_factory=dict)
    running: int = 0  # slots of open, unexpired reservations: concurrency in use
    expired: int = 0  # open reservations past their time-to-live, to be closed


@dataclass(frozen=True, slots=True)
class Posted:
    movement_id: str
    period_start: Instant
    overage: int  # credits charged beyond what was free (overage or a settlement past its hold)


@dataclass(frozen=True, slots=True)
class Check:
    allowed: bool
    required: int
    remaining: int  # what the key may spend now: the lower of the two below
    limited_by: str | None  # when refused, the limit that binds: "team" or "key cap"
    team_remaining: int  # the team's credits less its open holds
    key_remaining: int | None  # the key's cap less its usage and holds this period; None: no cap


def remaining_of(live: int, held: int) -> int:
    """The team's balance: live credits (an overdrawn grant counts as debt) less open holds.
    The one formula; the account routes apply it to the same two sums read in SQL."""
    return live - held


def needs_rollover(team: Team, now: Instant) -> bool:
    """A new team starts with next_rollover = its anchor, so its first credits arrive too."""
    return team.next_rollover is not None and team.next_rollover <= now


@dataclass
class Changes:
    """What a book's operations changed, written in one go by storage/book.py."""

    grants: list[NewGrant] = field(default_factory=list)
    # remaining, expired, amount: what each grant's columns move by
    grant_deltas: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    grants_expired: dict[str, Instant] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    per_period: dict[Instant, int] = field(default_factory=lambda: defaultdict(int))
    per_key: dict[tuple[Instant, str], int] = field(default_factory=lambda: defaultdict(int))
    per_hour: dict[Instant, int] = field(default_factory=lambda: defaultdict(int))
    # (period start, key, day) -> (credits, the latest charge's time)
    per_key_day: dict[tuple[Instant, str, Instant], tuple[int, Instant]] = field(
        default_factory=dict
    )
    new_holds: list[Reservation] = field(default_factory=list)
    holds: dict[str, Reservation] = field(default_factory=dict)  # changed rows, latest state
    expire_holds: bool = False  # close every open reservation past its time-to-live
    remembered: list[tuple[str, Record]] = field(default_factory=list)
    team: dict[str, int | None] = field(default_factory=dict)  # changed columns
    plan_id: str | None = None  # the team's new plan
    events: list[NewEvent] = field(default_factory=list)
    fired: list[Fired] = field(default_factory=list)  # alerts, and keys' caps, that fired
    topups: dict[str, tuple[Instant, int]] = field(default_factory=dict)  # rule: period, count


class Book:
    def __init__(
        self,
        team: Team,
        plan: Plan,
        now: Instant,
        grants: list[GrantState],
        holds: HoldTotals,
        *,
        keys: dict[str, ApiKey] | None = None,
        key_usage: dict[tuple[str, Instant], int] | None = None,
        reservations: dict[str, Reservation] | None = None,
        seen: dict[str, Record] | None = None,
        watch: Watch | None = None,
        expired: list[Reservation] | None = None,
    ) -> None:
        self.team, self.plan, self.now = team, plan, now
        # the live grants, and those a late charge of the batch may spend (not every past one)
        self.grants = {g.id: g for g in grants}
        self.held = holds.held
        self.key_held = dict(holds.by_key)
        self.running = holds.running
        self._expired_holds = holds.expired
        self.keys = keys or {}
        self.key_usage = key_usage or {}
        self.reservations = reservations or {}
        self.seen = seen or {}
        self.changes = Changes()
        self._period: Period | None = None
        self._new_grants: set[str] = set()
        self._new_holds: set[str] = set()
        self.holds_expired = 0  # holds past their time-to-live that rolling forward closed
        watch = watch or Watch()
        self._rules = {rule.id: (rule, fired) for rule, fired in watch.rules}
        self._cap_fired = dict(watch.cap_fired)
        self._period_used = dict(watch.period_used)
        self.event_seq = watch.event_seq
        self._topups = {rule.id: (rule, period, count) for rule, period, count in watch.topups}
        self._expired = expired or []

    # --- step 2: roll forward ------------------------------------------------------------------

    def roll_forward(self) -> None:
        """New periods' plan credits in, expired credits and holds out.

        A team idle for months gets each missed period's grant and its expiry recorded, so the
        history says exactly what the team was entitled to and lost.
        """
        if needs_rollover(self.team, self.now):
            self._roll_periods()
        if self._expired_holds:
            self.changes.expire_holds = True
            self.holds_expired, self._expired_holds = self._expired_holds, 0
            for r in self._expired:
                if r.settled == 0:  # held, never charged: the work it was for did not report
                    self._emit(EventType.HOLD_EXPIRED, _hold_expired(r))
        for r in list(self.reservations.values()):
            if r.status == HoldStatus.OPEN and r.expires_at <= self.now:
                self.reservations[r.id] = replace(r, status=HoldStatus.EXPIRED, closed_at=self.now)

    def _roll_periods(self) -> None:
        team, plan, now = self.team, self.plan, self.now
        current = period_at(team.anchor, plan.renews, now)
        granted_through = team.granted_through
        if current is not None:
            first = 0
            if granted_through is not None:
                last = period_at(team.anchor, plan.renews, granted_through)
                first = current.index + 1 if last is None else last.index + 1
            for index in range(first, current.index + 1):
                self._grant_plan_credits(period(team.anchor, plan.renews, index))
            granted_through = current.start
        due = [g for g in self.grants.values() if g.expired_by(now) and g.expired_at is None]
        for grant in sorted(due, key=lambda g: (g.expires_at or 0, g.id)):
            unused = max(grant.remaining, 0)
            if unused:
                self._line(new_id(), EntryKind.EXPIRY, -unused, grant.id, grant.expires_at or now)
                self._move(grant.id, -unused, unused)
            self.grants[grant.id] = replace(self.grants[grant.id], expired_at=now)
            self.changes.grants_expired[grant.id] = now
        next_start = team.anchor if current is None else current.end
        pending = [
            g.expires_at
            for g in self.grants.values()
            if g.expires_at is not None and g.expired_at is None
        ]
        candidates = [t for t in (next_start, min(pending, default=None)) if t is not None]
        self._set_team(granted_through=granted_through, next_rollover=min(candidates, default=None))

    def _grant_plan_credits(self, billing_period: Period) -> None:
        if self.plan.credits <= 0:
            return
        self._add_grant(
            NewGrant(
                id=new_id(billing_period.start),
                team_id=self.team.id,
                kind="plan",
                amount=self.plan.credits,
                starts_at=billing_period.start,
                expires_at=billing_period.end,
                period_start=billing_period.start,
                note=f"plan {self.plan.id}",
                created_at=self.now,
            ),
            movement_id=new_id(billing_period.start),
            occurred_at=billing_period.start,
        )

    # --- reads ---------------------------------------------------------------------------------

    def key(self, key_id: str) -> ApiKey:
        found = self.keys.get(key_id)
        if found is None or found.team_id != self.team.id:
            raise NotFound(f"API key {key_id} not found", keyId=key_id)
        return found

    def active_key(self, key_id: str) -> ApiKey:
        key = self.key(key_id)
        if not key.active:
            raise Conflict(f"API key {key_id} is revoked", keyId=key_id)
        return key

    def reservation(self, reservation_id: str) -> Reservation:
        found = self.reservations.get(reservation_id)
        if found is None:
            raise NotFound(f"Reservation {reservation_id} not found", reservationId=reservation_id)
        return found

    def rolled_team(self) -> Team:
        """The team as its changes so far leave it."""
        c, t = self.changes.team, self.team
        return replace(
            t,
            granted_through=c.get("granted_through", t.granted_through),
            next_rollover=c.get("next_rollover", t.next_rollover),
            last_charge_at=c.get("last_charge", t.last_charge_at),
        )

    def available_now(self) -> int:
        return remaining_of(
            spend.live_total(list(self.grants.values()), self.now, self.now), self.held
        )

    def current_period(self) -> Period | None:
        return self._period_at(self.now)

    # --- step 3: idempotency -------------------------------------------------------------------

    def replay(self, key: str | None, digest: str) -> dict[str, Any] | None:
        """The first answer for `key` if it was used with this content; 409 if with other
        content; None if the key is new."""
        if key is None:
            return None
        record = self.seen.get(key)
        if record is None:
            return None
        if record.request_hash != digest:
            raise IdempotencyConflict(
                f"Idempotency key {key!r} was already used with different content.",
                idempotencyKey=key,
            )
        result: dict[str, Any] = json.loads(record.response)
        return result

    def remember(
        self, key: str | None, digest: str, movement_id: str, result: dict[str, Any]
    ) -> None:
        if key is None:
            return
        record = Record(digest, movement_id, orjson.dumps(result, option=SORTED).decode())
        self.seen[key] = record
        self.changes.remembered.append((key, record))

    # --- step 4: admit -------------------------------------------------------------------------

    def admit(self, key: ApiKey, credits: int) -> Check:
        """May `key` set aside `credits` now? Both the team's balance and the key's cap are
        read, so the answer names both; when neither fits, the tighter one is the limit."""
        active = [g for g in self.grants.values() if g.active_at(self.now)]
        free = spend.available(active, self.now, self.now, self.held)
        left: int | None = None
        if key.cap is not None:
            current = self.current_period()
            used = 0 if current is None else self.key_usage.get((key.id, current.start), 0)
            left = max(key.cap - used - self.key_held.get(key.id, 0), 0)
        spendable = free if left is None else min(free, left)
        if credits <= spendable:
            return Check(True, credits, spendable, None, free, left)
        limit = "key cap" if left is not None and left < free else "team"
        return Check(False, credits, spendable, limit, free, left)

    # --- movements -----------------------------------------------------------------------------

    def grant(self, kind: str, credits: int, expires_at: Instant | None, note: str | None) -> str:
        grant_id = new_id(self.now)
        self._add_grant(
            NewGrant(
                id=grant_id,
                team_id=self.team.id,
                kind=kind,
                amount=credits,
                starts_at=self.now,
                expires_at=expires_at,
                period_start=None,
                note=note,
                created_at=self.now,
            ),
            movement_id=grant_id,
            occurred_at=self.now,
        )
        rollover = self.changes.team.get("next_rollover", self.team.next_rollover)
        if expires_at is not None and (rollover is None or expires_at < rollover):
            self._set_team(next_rollover=expires_at)
        self._emit(
            EventType.GRANTED,
            {
                "teamId": self.team.id,
                "grantId": grant_id,
                "kind": kind,
                "credits": credits,
                "expiresAt": None if expires_at is None else format_iso(expires_at),
                "remainingCredits": self.available_now(),
            },
        )
        return grant_id

    def charge(
        self,
        key: ApiKey,
        credits: int,
        at: Instant,
        details: Details,
        *,
        overage_ok: bool = False,
        check_cap: bool = True,
        settles: Reservation | None = None,
    ) -> Posted:
        """Spend `credits` at `at` for `key`. Raises, changing nothing, if it does not fit.

        Open reservations keep their credits aside from it. `settles`: the reservation this
        charge settles, in its state after it. The charge may spend what that one holds, and
        its hold is changed (reduced, or closed) before alerts and top-ups read the balance,
        so they read the one remaining the operation leaves (`available_now`).
        """
        billing_period = self._period_at(at)
        if billing_period is None:
            raise InvalidInput(
                "timestamp is before the team's first billing period",
                field="at",
                anchor=format_iso(self.team.anchor),
            )
        usage_key = (key.id, billing_period.start)
        if check_cap and key.cap is not None:
            used = self.key_usage.get(usage_key, 0) + self.key_held.get(key.id, 0)
            if used + credits > key.cap:
                raise InsufficientCredits(credits, max(key.cap - used, 0), reason="key cap")
        held = self.held - (0 if settles is None else self.reservations[settles.id].holding)
        active = [g for g in self.grants.values() if g.active_at(at)]
        parts = spend.allocate(active, credits, at, self.now, held=held, allow_overage=overage_ok)
        fits = spend.available(active, at, self.now, held)
        movement_id = new_id(self.now)
        reservation_id = None if settles is None else settles.id
        charged = [
            Line(
                movement_id,
                0,
                EntryKind.CHARGE,
                -part.amount,
                part.grant_id,
                at,
                self.now,
                key.id,
                billing_period.start,
                details,
                None,
                reservation_id,
            )
            for part in parts
        ] or [  # a zero-credit charge still records the work
            Line(
                movement_id,
                0,
                EntryKind.CHARGE,
                0,
                None,
                at,
                self.now,
                key.id,
                billing_period.start,
                details,
                None,
                reservation_id,
            )
        ]
        reinstated = [
            Line(movement_id, 0, EntryKind.EXPIRY_REVERSAL, p.reinstated, p.grant_id, at, self.now)
            for p in parts
            if p.reinstated
        ]
        # Charge lines come first (line 0), then the reversals of late charges.
        for n, line in enumerate(charged + reinstated):
            self.changes.lines.append(replace(line, line=n) if n else line)
        for part in parts:
            if part.reinstated:
                self._move(part.grant_id, part.reinstated, -part.reinstated)
            self._move(part.grant_id, -part.amount, 0)
        self.changes.per_period[billing_period.start] += credits
        self.changes.per_key[(billing_period.start, key.id)] += credits
        self.changes.per_hour[floor_hour(at)] += credits
        day = (billing_period.start, key.id, floor_day(at))
        had, latest = self.changes.per_key_day.get(day, (0, at))
        self.changes.per_key_day[day] = (had + credits, max(latest, at))
        self.key_usage[usage_key] = self.key_usage.get(usage_key, 0) + credits
        last = self.changes.team.get("last_charge", self.team.last_charge_at)
        if last is None or at > last:
            self._set_team(last_charge=at)
        self._period_used[billing_period.start] = (
            self._period_used.get(billing_period.start, 0) + credits
        )
        if settles is not None:
            self.change_hold(settles)
        current = self.current_period()
        if credits and current is not None and billing_period.start == current.start:
            self._check_alerts(key, current, movement_id)
        if credits and current is not None:
            self._top_up(current)
        return Posted(movement_id, billing_period.start, max(credits - fits, 0))

    def open_hold(self, reservation: Reservation) -> None:
        self.changes.new_holds.append(reservation)
        self._new_holds.add(reservation.id)
        self.reservations[reservation.id] = reservation
        self._hold_moved(reservation.key_id, reservation.holding, reservation.slots)

    def change_hold(self, after: Reservation) -> None:
        """Store the reservation's new state; what it holds moves the team's totals."""
        before = self.reservations[after.id]
        self.reservations[after.id] = after
        if after.id in self._new_holds:
            self.changes.new_holds = [
                after if h.id == after.id else h for h in self.changes.new_holds
            ]
        else:
            self.changes.holds[after.id] = after
        was_open = before.status == HoldStatus.OPEN and before.expires_at > self.now
        is_open = after.status == HoldStatus.OPEN and after.expires_at > self.now
        slots = after.slots * int(is_open) - before.slots * int(was_open)
        self._hold_moved(after.key_id, after.holding - before.holding, slots)

    def change_plan(self, plan: Plan, at_once: bool) -> int:
        """Move the team to `plan`; the credits it added (0 unless `at_once` raised them).

        Limits follow the plan at once (they are read from it). Periods follow the new plan
        from now on: the current one counts as granted (with the old plan's credits), the next
        brings the new plan's. `at_once`: the current period's plan credits are raised to the
        new plan's, by a grant entry of the difference on its plan grant (or, when the period
        has none, its full grant); a plan with fewer credits takes nothing back.
        """
        old = self.plan
        self.plan, self._period = plan, None
        self.changes.plan_id = plan.id
        current = self.current_period()
        added = 0
        if current is not None:
            if at_once and plan.credits > 0:
                granted = next(
                    (
                        g
                        for g in self.grants.values()
                        if g.kind == "plan" and g.starts_at == current.start
                    ),
                    None,
                )
                if granted is None:
                    self._grant_plan_credits(current)
                    added = plan.credits
                elif plan.credits > granted.amount:
                    added = plan.credits - granted.amount
                    note = f"plan {old.id} to {plan.id}"
                    self._line(new_id(self.now), EntryKind.GRANT, added, granted.id, self.now, note)
                    self._move(granted.id, added, 0, added)
            pending = [
                g.expires_at
                for g in self.grants.values()
                if g.expires_at is not None and g.expired_at is None
            ]
            upcoming = [t for t in (current.end, min(pending, default=None)) if t is not None]
            self._set_team(granted_through=current.start, next_rollover=min(upcoming, default=None))
        self._emit(
            EventType.PLAN_CHANGED,
            {
                "teamId": self.team.id,
                "from": old.id,
                "to": plan.id,
                "atOnce": at_once,
                "creditsAdded": added,
                "remainingCredits": self.available_now(),
            },
        )
        return added

    # --- alerts --------------------------------------------------------------------------------

    def _check_alerts(self, key: ApiKey, current: Period, movement_id: str) -> None:
        """After a charge of the current period: fire each rule of the team, and of the key,
        whose condition is now true and that has not fired this period; and the key's cap."""
        team_used = self._period_used.get(current.start, 0)
        team_budget = self._period_credits(current)
        team_remaining = self.available_now()
        key_used = self.key_usage.get((key.id, current.start), 0)
        key_remaining = (
            team_remaining if key.cap is None else key.cap - key_used - self.key_held.get(key.id, 0)
        )
        for rule_id, (rule, fired) in list(self._rules.items()):
            if fired == current.start or rule.key_id not in (None, key.id):
                continue
            if rule.key_id is None:
                used, budget, remaining = team_used, team_budget, team_remaining
            else:
                budget = team_budget if key.cap is None else key.cap
                used, remaining = key_used, key_remaining
            if holds(rule, used, budget, remaining):
                self._rules[rule_id] = (rule, current.start)
                data = {
                    "teamId": self.team.id,
                    "keyId": rule.key_id,
                    "ruleId": rule.id,
                    "kind": str(rule.kind),
                    "threshold": rule.threshold,
                    "periodStart": format_iso(current.start),
                    "periodEnd": None if current.end is None else format_iso(current.end),
                    "creditsUsed": used,
                    "budget": budget,
                    "remainingCredits": remaining,
                    "chargeId": movement_id,
                }
                self._fire(rule.id, current.start, EventType.THRESHOLD, data)
        if (
            key.cap is not None
            and key_used >= key.cap
            and self._cap_fired.get(key.id) != current.start
        ):
            self._cap_fired[key.id] = current.start
            data = {
                "teamId": self.team.id,
                "keyId": key.id,
                "keyName": key.name,
                "cap": key.cap,
                "creditsUsed": key_used,
                "periodStart": format_iso(current.start),
                "chargeId": movement_id,
            }
            self._fire(cap_rule_id(key.id), current.start, EventType.KEY_CAP, data)

    def _top_up(self, current: Period) -> None:
        """After a charge: each top-up rule whose threshold the team is now under grants its
        credits, once per charge, at most its number of times this period."""
        for rule_id, (rule, counted_in, count) in list(self._topups.items()):
            done = count if counted_in == current.start else 0
            if done >= rule.max_per_period or self.available_now() >= rule.below:
                continue
            expires = (
                None if rule.expires_days is None else self.now + rule.expires_days * MS_PER_DAY
            )
            self.grant("topup", rule.credits, expires, f"top-up {rule.id}")
            self._topups[rule_id] = (rule, current.start, done + 1)
            self.changes.topups[rule_id] = (current.start, done + 1)

    def _period_credits(self, current: Period) -> int | None:
        """The credits the plan granted for the current period (the budget of a percent)."""
        for grant in self.grants.values():
            if grant.kind == "plan" and grant.starts_at == current.start:
                return grant.amount
        return None

    def _fire(
        self, rule_id: str, period_start: Instant, kind: EventType, data: dict[str, Any]
    ) -> None:
        seq = self._emit(kind, data)
        self.changes.fired.append(Fired(rule_id, period_start, seq))

    def _emit(self, kind: EventType, data: dict[str, Any]) -> int:
        """An event of this team, numbered after its last; delivered by webhooks once the
        transaction that raised it commits (the outbox rows are written with it)."""
        self.event_seq += 1
        event_id = f"evt_{new_id(self.now).replace('-', '')}"
        body = {"type": str(kind), "timestamp": format_iso(self.now), "data": data}
        payload = orjson.dumps(body).decode()
        self.changes.events.append(NewEvent(self.event_seq, event_id, kind, payload))
        self._set_team(event_seq=self.event_seq)
        return self.event_seq

    # --- bookkeeping ---------------------------------------------------------------------------

    def _hold_moved(self, key_id: str, credits: int, running: int) -> None:
        self.held += credits
        self.key_held[key_id] = self.key_held.get(key_id, 0) + credits
        self.running += running

    def _add_grant(self, grant: NewGrant, *, movement_id: str, occurred_at: Instant) -> None:
        self.changes.grants.append(grant)
        self._new_grants.add(grant.id)
        self.grants[grant.id] = GrantState(
            grant.id,
            grant.kind,
            grant.starts_at,
            grant.expires_at,
            grant.amount,
            0,
            None,
            grant.amount,
        )
        self._line(movement_id, EntryKind.GRANT, grant.amount, grant.id, occurred_at, grant.note)

    def _line(
        self,
        movement_id: str,
        kind: EntryKind,
        amount: int,
        grant_id: str,
        occurred_at: Instant,
        note: str | None = None,
    ) -> None:
        self.changes.lines.append(
            Line(movement_id, 0, kind, amount, grant_id, occurred_at, self.now, note=note)
        )

    def _move(self, grant_id: str, remaining: int, expired: int, amount: int = 0) -> None:
        grant = self.grants[grant_id]
        self.grants[grant_id] = replace(
            grant,
            remaining=grant.remaining + remaining,
            expired_amount=grant.expired_amount + expired,
            amount=grant.amount + amount,
        )
        if grant_id in self._new_grants:
            return  # a grant made in this batch is inserted in its final state (storage)
        dr, de, da = self.changes.grant_deltas.get(grant_id, (0, 0, 0))
        self.changes.grant_deltas[grant_id] = (dr + remaining, de + expired, da + amount)

    def _set_team(self, **values: int | None) -> None:
        self.changes.team.update(values)

    def _period_at(self, at: Instant) -> Period | None:
        """Most charges of a batch fall in one period: keep the last one found."""
        if self._period is None or not self._period.contains(at):
            self._period = period_at(self.team.anchor, self.plan.renews, at)
        return self._period


def _hold_expired(r: Reservation) -> dict[str, Any]:
    return {
        "teamId": r.team_id,
        "reservationId": r.id,
        "keyId": r.key_id,
        "credits": r.amount,
        "endpoint": r.endpoint,
        "jobId": r.job_id,
        "createdAt": format_iso(r.created_at),
        "expiresAt": format_iso(r.expires_at),
    }
