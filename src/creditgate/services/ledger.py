"""Credit-moving writes: grants and charges. One team, one transaction, team row locked.

Checks run in a fixed order and the first failure wins:
  1. input (amount, text lengths)            -> InvalidInput
  2. key / team exists                       -> NotFound
  3. idempotency key seen: same content      -> replay the first result
                           other content     -> IdempotencyConflict
  4. key revoked                             -> Conflict
  5. team suspended                          -> TeamSuspended
  6. time: not > 5 min ahead, not before the team's first period -> InvalidInput
  7. key's per-period cap                    -> InsufficientCredits(reason="key cap")
  8. team's available credits                -> InsufficientCredits(reason="team")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import Connection

from creditgate.domain import grants as spend
from creditgate.domain.errors import (
    Conflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    TeamSuspended,
)
from creditgate.domain.grants import GRANT_KINDS
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant, format_iso
from creditgate.domain.periods import period_at
from creditgate.domain.plans import Plan
from creditgate.domain.pricing import MAX_CREDITS
from creditgate.domain.teams import ApiKey, Team
from creditgate.services import idempotency
from creditgate.services.keys import resolve_key
from creditgate.services.rollover import needs_rollover, roll_forward
from creditgate.storage import keys, ledger, plans, reservations, teams
from creditgate.storage.database import Database
from creditgate.storage.ledger import EntryLine, NewGrant

# How far ahead of the server's clock a charge may be dated (clock skew between services).
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_TEXT = {"endpoint": 64, "api_version": 8, "job_id": 200, "target": 2048, "note": 500}
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    key: str  # the fc- key itself or its id
    credits: int
    at: Instant | None = None  # None: now
    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeResult:
    id: str
    team_id: str
    key_id: str
    credits: int
    occurred_at: Instant
    period_start: Instant
    overage: int  # credits charged beyond the balance (teams allowed overage only)
    remaining_credits: int  # the team's available credits right after this charge
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class GrantRequest:
    team_id: str
    credits: int
    kind: str = "pack"
    expires_at: Instant | None = None
    note: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class GrantResult:
    id: str
    team_id: str
    kind: str
    credits: int
    starts_at: Instant
    expires_at: Instant | None
    remaining_credits: int
    replayed: bool = False


def check_amount(credits: object, *, allow_zero: bool = True) -> int:
    if isinstance(credits, bool) or not isinstance(credits, int):
        raise InvalidInput("credits must be a whole number", field="credits")
    if credits < (0 if allow_zero else 1) or credits > MAX_CREDITS:
        low = 0 if allow_zero else 1
        raise InvalidInput(f"credits must be between {low} and {MAX_CREDITS}", field="credits")
    return credits


def check_texts(**texts: str | None) -> None:
    for name, value in texts.items():
        if value is not None and len(value) > MAX_TEXT.get(name, MAX_IDEMPOTENCY_KEY):
            raise InvalidInput(f"{name} is too long", field=name)


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", field="id"
        )


def lock_team(conn: Connection, team_id: str, now: Instant) -> tuple[Team, Plan]:
    """Lock the team row, bring its grants up to date and return it with its plan."""
    team = teams.get_team_for_update(conn, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} not found", teamId=team_id)
    plan = plans.get_plan(conn, team.plan_id)
    if plan is None:
        raise NotFound(f"Plan {team.plan_id} not found", planId=team.plan_id)
    if needs_rollover(team, now):
        roll_forward(conn, team, plan, now)
        team = teams.get_team(conn, team_id) or team
    for reservation_id in reservations.expired_open(conn, team_id, now):
        reservations.close(conn, team_id, reservation_id, "expired", now)
    return team, plan


def charge(db: Database, request: ChargeRequest, now: Instant) -> ChargeResult:
    check_amount(request.credits)
    check_texts(
        endpoint=request.endpoint,
        api_version=request.api_version,
        job_id=request.job_id,
        target=request.target,
    )
    check_idempotency_key(request.idempotency_key)
    with db.read() as conn:
        key, _ = resolve_key(conn, request.key)
    with db.write() as conn:
        return charge_in(conn, key, request, now)


def charge_in(conn: Connection, key: ApiKey, request: ChargeRequest, now: Instant) -> ChargeResult:
    """The charge itself, inside a write transaction (batch ingestion shares one)."""
    content = {**asdict(request), "key": key.id}
    del content["idempotency_key"]
    digest = idempotency.request_hash("charge", content)
    team, plan = lock_team(conn, key.team_id, now)
    previous = idempotency.replay(conn, team.id, request.idempotency_key, digest)
    if previous is not None:
        return ChargeResult(**{**previous, "replayed": True})
    fresh = _key_now(conn, key.id)
    if not fresh.active:
        raise Conflict(f"API key {key.id} is revoked", keyId=key.id)
    if team.suspended:
        raise TeamSuspended()
    at = now if request.at is None else request.at
    if at > now + MAX_FUTURE_MS:
        raise InvalidInput(
            "timestamp is more than 5 minutes in the future", field="at", at=format_iso(at)
        )
    held = reservations.team_hold(conn, team.id, now)
    posted = post_charge(
        conn,
        team,
        plan,
        fresh,
        request.credits,
        at,
        now,
        Details(request.endpoint, request.api_version, request.job_id, request.target),
        held=held,
        key_held=reservations.key_hold(conn, team.id, key.id, now),
        overage_ok=team.allow_overage,
    )
    result = ChargeResult(
        id=posted.movement_id,
        team_id=team.id,
        key_id=key.id,
        credits=request.credits,
        occurred_at=at,
        period_start=posted.period_start,
        overage=posted.overage,
        remaining_credits=available_now(conn, team.id, now),
    )
    stored = asdict(result)
    del stored["replayed"]
    idempotency.remember(
        conn, team.id, request.idempotency_key, digest, posted.movement_id, stored, now
    )
    return result


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
    overage: int


def post_charge(
    conn: Connection,
    team: Team,
    plan: Plan,
    key: ApiKey,
    credits: int,
    at: Instant,
    now: Instant,
    details: Details,
    *,
    held: int = 0,
    key_held: int = 0,
    overage_ok: bool = False,
    check_cap: bool = True,
    reservation_id: str | None = None,
) -> Posted:
    """Write one charge: allocate over grants, entries, rollups. The team row must be locked.

    `held` is what open reservations keep aside from the team's live credits (and `key_held`
    from the key's cap); a settlement passes what remains held by others.
    """
    billing_period = period_at(team.anchor, plan.renews, at)
    if billing_period is None:
        raise InvalidInput(
            "timestamp is before the team's first billing period",
            field="at",
            anchor=format_iso(team.anchor),
        )
    if check_cap:
        _check_cap(conn, key, billing_period.start, credits + key_held)
    active = ledger.grants_active_at(conn, team.id, at)
    parts = spend.allocate(active, credits, at, now, held=held, allow_overage=overage_ok)
    fits = spend.available(active, at, now, held)
    movement_id = new_id(now)
    line = EntryLine(
        "charge",
        0,
        key_id=key.id,
        period_start=billing_period.start,
        endpoint=details.endpoint,
        api_version=details.api_version,
        job_id=details.job_id,
        target=details.target,
        reservation_id=reservation_id,
    )
    lines: list[EntryLine] = []
    reversals: list[EntryLine] = []  # after the charge lines: line 0 is always a charge
    for part in parts:
        if part.reinstated:
            reversals.append(EntryLine("expiry_reversal", part.reinstated, grant_id=part.grant_id))
            ledger.move_grant(conn, team.id, part.grant_id, part.reinstated, -part.reinstated)
        lines.append(replace(line, amount=-part.amount, grant_id=part.grant_id))
        ledger.move_grant(conn, team.id, part.grant_id, -part.amount)
    if not parts:  # a zero-credit charge still records the work (activity, history)
        lines.append(line)
    ledger.insert_movement(
        conn, team.id, movement_id, lines + reversals, occurred_at=at, recorded_at=now
    )
    ledger.add_usage(conn, team.id, key.id, billing_period.start, at, credits)
    if team.last_charge_at is None or at > team.last_charge_at:
        teams.update_team(conn, team.id, last_charge_ms=at)
    return Posted(movement_id, billing_period.start, max(credits - fits, 0))


def available_now(conn: Connection, team_id: str, now: Instant) -> int:
    """What the team could spend now: live credits less open reservations."""
    balance = ledger.live_balance(conn, team_id, now) or 0
    return balance - reservations.team_hold(conn, team_id, now)


def _key_now(conn: Connection, key_id: str) -> ApiKey:
    key = keys.get_key(conn, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found", keyId=key_id)
    return key


def _check_cap(conn: Connection, key: ApiKey, period_start: Instant, credits: int) -> None:
    if key.cap is None:
        return
    used = ledger.key_usage(conn, key.team_id, key.id, period_start)
    if used + credits > key.cap:
        raise InsufficientCredits(credits, max(key.cap - used, 0), reason="key cap")


def grant(db: Database, request: GrantRequest, now: Instant) -> GrantResult:
    check_amount(request.credits, allow_zero=False)
    check_texts(note=request.note)
    check_idempotency_key(request.idempotency_key)
    if request.kind not in GRANT_KINDS or request.kind == "plan":
        kinds = ", ".join(k for k in GRANT_KINDS if k != "plan")
        raise InvalidInput(f"kind must be one of: {kinds}", field="kind")
    if request.expires_at is not None and request.expires_at <= now:
        raise InvalidInput("expiry must be in the future", field="expiresAt")
    content: dict[str, Any] = asdict(request)
    del content["idempotency_key"]
    digest = idempotency.request_hash("grant", content)
    with db.write() as conn:
        team, _ = lock_team(conn, request.team_id, now)
        previous = idempotency.replay(conn, team.id, request.idempotency_key, digest)
        if previous is not None:
            return GrantResult(**{**previous, "replayed": True})
        grant_id = new_id(now)
        ledger.insert_grant(
            conn,
            NewGrant(
                id=grant_id,
                team_id=team.id,
                kind=request.kind,
                amount=request.credits,
                starts_at=now,
                expires_at=request.expires_at,
                period_start=None,
                note=request.note,
                created_at=now,
            ),
        )
        ledger.insert_movement(
            conn,
            team.id,
            grant_id,
            [EntryLine("grant", request.credits, grant_id=grant_id, note=request.note)],
            occurred_at=now,
            recorded_at=now,
        )
        if request.expires_at is not None and (
            team.next_rollover is None or request.expires_at < team.next_rollover
        ):
            teams.update_team(conn, team.id, next_rollover_ms=request.expires_at)
        result = GrantResult(
            id=grant_id,
            team_id=team.id,
            kind=request.kind,
            credits=request.credits,
            starts_at=now,
            expires_at=request.expires_at,
            remaining_credits=available_now(conn, team.id, now),
        )
        stored = asdict(result)
        del stored["replayed"]
        idempotency.remember(conn, team.id, request.idempotency_key, digest, grant_id, stored, now)
        return result
