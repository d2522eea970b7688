"""A team's credit state, loaded once under the team's row lock, changed in memory, written once.

Every charge (a single one, a batch, a settlement) goes through TeamBook.charge, so the rules
live in one place, and a batch of a thousand events costs a handful of statements, not
thousands. A charge that is refused raises before it changes anything, so the events before
and after it in a batch are unaffected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from creditgate.domain import grants as spend
from creditgate.domain.errors import InsufficientCredits, InvalidInput, NotFound
from creditgate.domain.grants import GrantState
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant, floor_hour, format_iso
from creditgate.domain.periods import Period, period_at
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team
from creditgate.services import idempotency
from creditgate.services.rollover import lock_team
from creditgate.storage import keys, ledger, reservations, teams
from creditgate.storage.ledger import IdempotencyRecord


@dataclass(frozen=True, slots=True)
class Details:
    """What a charge says about the work it pays for."""

    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    movement_id: str
    period_start: Instant
    overage: int  # credits charged beyond what was free (overage or a settlement past its hold)


class TeamBook:
    def __init__(self, conn: Connection, team: Team, plan: Plan, now: Instant) -> None:
        self.conn, self.team, self.plan, self.now = conn, team, plan, now
        self.grants = {g.id: g for g in ledger.all_grants(conn, team.id)}
        self.team_held = reservations.team_hold(conn, team.id, now)
        self._key_holds: dict[str, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._used: dict[tuple[str, Instant], int] = {}
        self._seen: dict[str, IdempotencyRecord] = {}
        self._looked_up: set[str] = set()  # keys whose stored record (or its absence) is known
        self._period: Period | None = None
        self._grant_deltas: dict[str, tuple[int, int]] = {}
        self._entries: list[dict[str, Any]] = []
        self._per_period: dict[Instant, int] = defaultdict(int)
        self._per_key: dict[tuple[Instant, str], int] = defaultdict(int)
        self._per_hour: dict[Instant, int] = defaultdict(int)
        self._remembered: list[dict[str, Any]] = []
        self._last_charge = team.last_charge_at

    @classmethod
    def open(cls, conn: Connection, team_id: str, now: Instant) -> TeamBook:
        """Lock the team's row, bring its grants up to date, and load its state."""
        team, plan = lock_team(conn, team_id, now)
        return cls(conn, team, plan, now)

    # --- reads -------------------------------------------------------------------------------

    def key(self, key_id: str) -> ApiKey:
        if key_id not in self._keys:
            found = keys.get_key(self.conn, key_id)
            if found is None or found.team_id != self.team.id:
                raise NotFound(f"API key {key_id} not found", keyId=key_id)
            self._keys[key_id] = found
        return self._keys[key_id]

    def key_held(self, key_id: str) -> int:
        if self._key_holds is None:
            self._key_holds = reservations.key_holds(self.conn, self.team.id, self.now)
        return self._key_holds.get(key_id, 0)

    def key_used(self, key_id: str, period_start: Instant) -> int:
        if (key_id, period_start) not in self._used:
            stored = ledger.key_usage(self.conn, self.team.id, key_id, period_start)
            self._used[(key_id, period_start)] = stored
        return self._used[(key_id, period_start)]

    def available_now(self) -> int:
        """Live credits (an overdrawn grant counts as debt) less open reservations."""
        live = sum(g.remaining for g in self.grants.values() if g.active_at(self.now))
        return live - self.team_held

    # --- idempotency -------------------------------------------------------------------------

    def prefetch(self, idempotency_keys: list[str]) -> None:
        wanted = [k for k in idempotency_keys if k not in self._looked_up]
        self._seen.update(ledger.idempotency_many(self.conn, self.team.id, wanted))
        self._looked_up.update(wanted)

    def replay(self, key: str | None, digest: str) -> dict[str, Any] | None:
        if key is None:
            return None
        if key not in self._looked_up:
            self.prefetch([key])
        return idempotency.check(self._seen.get(key), key, digest)

    def remember(
        self, key: str | None, digest: str, movement_id: str, result: dict[str, Any]
    ) -> None:
        if key is None:
            return
        record = idempotency.make_record(digest, movement_id, result)
        self._seen[key] = record
        self._remembered.append(
            {
                "team_id": self.team.id,
                "key": key,
                "request_hash": record.request_hash,
                "movement_id": movement_id,
                "response": record.response,
                "created_ms": self.now,
            }
        )

    # --- the charge --------------------------------------------------------------------------

    def charge(
        self,
        key: ApiKey,
        credits: int,
        at: Instant,
        details: Details,
        *,
        held: int | None = None,
        overage_ok: bool = False,
        check_cap: bool = True,
        reservation_id: str | None = None,
    ) -> Posted:
        """Spend `credits` at `at` for `key`. Raises, changing nothing, if it does not fit.

        `held` is what open reservations keep aside from live credits (default: all of the
        team's); a settlement passes what others hold, so it may spend its own hold.
        """
        billing_period = self._period_at(at)
        if billing_period is None:
            raise InvalidInput(
                "timestamp is before the team's first billing period",
                field="at",
                anchor=format_iso(self.team.anchor),
            )
        if check_cap and key.cap is not None:
            used = self.key_used(key.id, billing_period.start) + self.key_held(key.id)
            if used + credits > key.cap:
                raise InsufficientCredits(credits, max(key.cap - used, 0), reason="key cap")
        held = self.team_held if held is None else held
        active = [g for g in self.grants.values() if g.active_at(at)]
        parts = spend.allocate(active, credits, at, self.now, held=held, allow_overage=overage_ok)
        fits = spend.available(active, at, self.now, held)
        movement_id = new_id(self.now)
        line = {
            "team_id": self.team.id,
            "movement_id": movement_id,
            "kind": "charge",
            "amount": 0,
            "grant_id": None,
            "key_id": key.id,
            "period_start_ms": billing_period.start,
            "endpoint": details.endpoint,
            "api_version": details.api_version,
            "job_id": details.job_id,
            "target": details.target,
            "note": None,
            "reservation_id": reservation_id,
            "occurred_ms": at,
            "recorded_ms": self.now,
        }
        charges, reversals = [], []
        for part in parts:
            if part.reinstated:
                reversals.append(
                    {
                        **line,
                        "kind": "expiry_reversal",
                        "amount": part.reinstated,
                        "grant_id": part.grant_id,
                        "key_id": None,
                        "period_start_ms": None,
                        "endpoint": None,
                        "api_version": None,
                        "job_id": None,
                        "target": None,
                        "reservation_id": None,
                    }
                )
                self._move(part.grant_id, part.reinstated, -part.reinstated)
            charges.append({**line, "amount": -part.amount, "grant_id": part.grant_id})
            self._move(part.grant_id, -part.amount, 0)
        # A zero-credit charge still records the work; charge lines come first (line 0).
        for n, row in enumerate((charges or [line]) + reversals):
            self._entries.append({**row, "line": n})
        self._per_period[billing_period.start] += credits
        self._per_key[(billing_period.start, key.id)] += credits
        self._per_hour[floor_hour(at)] += credits
        self._used[(key.id, billing_period.start)] = (
            self.key_used(key.id, billing_period.start) + credits
        )
        if self._last_charge is None or at > self._last_charge:
            self._last_charge = at
        return Posted(movement_id, billing_period.start, max(credits - fits, 0))

    def _period_at(self, at: Instant) -> Period | None:
        """Most events of a batch fall in one period: keep the last one found."""
        if self._period is None or not self._period.contains(at):
            self._period = period_at(self.team.anchor, self.plan.renews, at)
        return self._period

    def _move(self, grant_id: str, remaining: int, expired: int) -> None:
        grant: GrantState = self.grants[grant_id]
        self.grants[grant_id] = replace(
            grant,
            remaining=grant.remaining + remaining,
            expired_amount=grant.expired_amount + expired,
        )
        dr, de = self._grant_deltas.get(grant_id, (0, 0))
        self._grant_deltas[grant_id] = (dr + remaining, de + expired)

    # --- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything charged since the last flush, in a few statements."""
        ledger.insert_entry_rows(self.conn, self._entries)
        ledger.move_grants(self.conn, self.team.id, self._grant_deltas)
        ledger.add_usage_many(
            self.conn, self.team.id, self._per_period, self._per_key, self._per_hour
        )
        ledger.insert_idempotency_rows(self.conn, self._remembered)
        if self._last_charge != self.team.last_charge_at:
            teams.update_team(self.conn, self.team.id, last_charge_ms=self._last_charge)
            self.team = replace(self.team, last_charge_at=self._last_charge)
        self._entries, self._remembered, self._grant_deltas = [], [], {}
        self._per_period.clear()
        self._per_key.clear()
        self._per_hour.clear()
