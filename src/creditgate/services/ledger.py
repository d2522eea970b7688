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

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.errors import (
    Conflict,
    InvalidInput,
    TeamSuspended,
)
from creditgate.domain.grants import GRANT_KINDS
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant, format_iso
from creditgate.domain.pricing import MAX_CREDITS
from creditgate.domain.teams import ApiKey
from creditgate.domain.text import refuse_nul
from creditgate.services import idempotency
from creditgate.services.book import Details, TeamBook
from creditgate.services.keys import resolve_key
from creditgate.services.rollover import lock_team
from creditgate.storage import ledger, reservations, teams
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
        refuse_nul(value, name)


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", field="id"
        )
    refuse_nul(key, "idempotency key", "id")


def check_charge(request: ChargeRequest) -> None:
    """Check 1 of the order above: the request's own values, before anything is read."""
    check_amount(request.credits)
    check_texts(
        endpoint=request.endpoint,
        api_version=request.api_version,
        job_id=request.job_id,
        target=request.target,
    )
    check_idempotency_key(request.idempotency_key)


def charge(db: Database, request: ChargeRequest, now: Instant) -> ChargeResult:
    check_charge(request)
    with db.read() as conn:
        key, _ = resolve_key(conn, request.key)
    with db.write() as conn:
        book = TeamBook.open(conn, key.team_id, now)
        result = charge_in(book, key, request)
        book.flush()
        return result


def charge_in(book: TeamBook, key: ApiKey, request: ChargeRequest) -> ChargeResult:
    """One charge in an open book (a single charge or one event of a batch)."""
    digest = idempotency.request_hash("charge", _content(request, key.id))
    previous = book.replay(request.idempotency_key, digest)
    if previous is not None:
        return ChargeResult(**{**previous, "replayed": True})
    fresh = book.key(key.id)
    if not fresh.active:
        raise Conflict(f"API key {key.id} is revoked", keyId=key.id)
    if book.team.suspended:
        raise TeamSuspended()
    at = book.now if request.at is None else request.at
    if at > book.now + MAX_FUTURE_MS:
        raise InvalidInput(
            "timestamp is more than 5 minutes in the future", field="at", at=format_iso(at)
        )
    posted = book.charge(
        fresh,
        request.credits,
        at,
        Details(request.endpoint, request.api_version, request.job_id, request.target),
        overage_ok=book.team.allow_overage,
    )
    result = ChargeResult(
        id=posted.movement_id,
        team_id=book.team.id,
        key_id=key.id,
        credits=request.credits,
        occurred_at=at,
        period_start=posted.period_start,
        overage=posted.overage,
        remaining_credits=book.available_now(),
    )
    book.remember(request.idempotency_key, digest, posted.movement_id, _stored(result))
    return result


def _content(request: ChargeRequest, key_id: str) -> dict[str, Any]:
    """What a charge's idempotency hash covers (the key by id, whichever form was sent)."""
    return {
        "key": key_id,
        "credits": request.credits,
        "at": request.at,
        "endpoint": request.endpoint,
        "api_version": request.api_version,
        "job_id": request.job_id,
        "target": request.target,
    }


def _stored(result: ChargeResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "team_id": result.team_id,
        "key_id": result.key_id,
        "credits": result.credits,
        "occurred_at": result.occurred_at,
        "period_start": result.period_start,
        "overage": result.overage,
        "remaining_credits": result.remaining_credits,
    }


def available_now(conn: Connection, team_id: str, now: Instant) -> int:
    """What the team could spend now: live credits less open reservations."""
    balance = ledger.live_balance(conn, team_id, now) or 0
    return balance - reservations.team_hold(conn, team_id, now)


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
