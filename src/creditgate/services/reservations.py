"""Reservations: hold credits before work whose cost is not known, then settle or release.

reserve(n)   admits n against the team's available credits (grants - open holds) and the key's
             cap (usage + its open holds), atomically under the team lock; 402 otherwise.
settle(x)    charges x now. Up to what the reservation still holds, the charge spends its own
             hold; beyond that it spends free credits, and past those it goes below zero (the
             one overdraft the ledger allows, reported as `overage`). Repeatable; `final`
             closes the reservation and releases the rest.
release()    closes it with no further charge.
expiry       an open reservation past its time-to-live holds nothing; the next write of its
             team (or the server's sweeper) records it as expired.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.errors import (
    ConcurrencyLimited,
    Conflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    TeamSuspended,
)
from creditgate.domain.grants import available
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.domain.periods import period_at
from creditgate.domain.teams import ApiKey
from creditgate.services import idempotency
from creditgate.services.book import Details, TeamBook
from creditgate.services.keys import resolve_key
from creditgate.services.ledger import (
    available_now,
    check_amount,
    check_idempotency_key,
    check_texts,
)
from creditgate.services.rollover import lock_team
from creditgate.storage import keys, ledger, plans, reservations
from creditgate.storage.database import Database
from creditgate.storage.reservations import Reservation

DEFAULT_TTL_MS = 60 * 60 * 1000
MAX_TTL_MS = 7 * 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    key: str
    credits: int
    ttl_ms: int = DEFAULT_TTL_MS
    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationView:
    id: str
    team_id: str
    key_id: str
    credits: int
    settled: int
    holding: int
    status: str
    created_at: Instant
    expires_at: Instant
    closed_at: Instant | None
    overage: int  # charged beyond what was reserved and free, by the last settlement
    remaining_credits: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    allowed: bool
    required: int
    remaining: int  # what the key may spend now: the lower of the two below
    limited_by: str | None  # when refused, the limit that binds: "team" or "key cap"
    team_remaining: int  # the team's credits less its open holds
    key_remaining: int | None  # the key's cap less its usage and holds this period; None: no cap


def _view(
    conn: Connection,
    r: Reservation,
    now: Instant,
    overage: int = 0,
    remaining: int | None = None,
) -> ReservationView:
    """The wire view; `remaining` when the caller already knows it (saves three reads)."""
    return ReservationView(
        id=r.id,
        team_id=r.team_id,
        key_id=r.key_id,
        credits=r.amount,
        settled=r.settled,
        holding=r.holding if r.expires_at > now else 0,
        status=r.status,
        created_at=r.created_at,
        expires_at=r.expires_at,
        closed_at=r.closed_at,
        overage=overage,
        remaining_credits=available_now(conn, r.team_id, now) if remaining is None else remaining,
    )


def _stored(view: ReservationView) -> dict[str, Any]:
    out = asdict(view)
    del out["replayed"]
    return out


def _replayed(previous: dict[str, Any]) -> ReservationView:
    return ReservationView(**{**previous, "replayed": True})


def reserve(
    db: Database,
    request: ReserveRequest,
    now: Instant,
    *,
    max_open: int | None = None,
    owner: str | None = None,
) -> ReservationView:
    """Hold credits; with `max_open`, also refuse while the team has that many jobs open.
    `owner`: the gateway process whose request holds it (released if that process dies)."""
    check_amount(request.credits, allow_zero=False)
    check_texts(
        endpoint=request.endpoint,
        api_version=request.api_version,
        job_id=request.job_id,
        target=request.target,
    )
    check_idempotency_key(request.idempotency_key)
    if not 1_000 <= request.ttl_ms <= MAX_TTL_MS:
        raise InvalidInput("ttl must be between 1 second and 7 days", field="ttlSeconds")
    with db.write() as conn:  # one transaction: find the key, then lock its team
        key, _ = resolve_key(conn, request.key)
        content = {**asdict(request), "key": key.id}
        del content["idempotency_key"]
        digest = idempotency.request_hash("reserve", content)
        team, plan = lock_team(conn, key.team_id, now)
        previous = idempotency.replay(conn, team.id, request.idempotency_key, digest)
        if previous is not None:
            return _replayed(previous)
        fresh = _active_key(conn, key.id)
        if team.suspended:
            raise TeamSuspended()
        if max_open is not None:
            running = reservations.count_open(conn, team.id, now)
            if running >= max_open:
                raise ConcurrencyLimited(running, max_open)
        verdict = _admit(conn, fresh, request.credits, now, plan.renews, team.anchor)
        if not verdict.allowed:
            raise InsufficientCredits(
                request.credits, verdict.remaining, reason=verdict.limited_by or "team"
            )
        held = Reservation(
            id=new_id(now),
            team_id=team.id,
            key_id=key.id,
            amount=request.credits,
            settled=0,
            status="open",
            endpoint=request.endpoint,
            api_version=request.api_version,
            job_id=request.job_id,
            target=request.target,
            created_at=now,
            expires_at=now + request.ttl_ms,
            closed_at=None,
            owner=owner,
        )
        reservations.insert_reservation(conn, held)
        view = _view(conn, held, now, remaining=verdict.team_remaining - request.credits)
        idempotency.remember(
            conn, team.id, request.idempotency_key, digest, held.id, _stored(view), now
        )
        return view


def _admit(
    conn: Connection, key: ApiKey, credits: int, now: Instant, renews: bool, anchor: Instant
) -> Check:
    """May `key` set aside `credits` now? Both the team's balance and the key's cap are read,
    so the answer names both; when neither fits, the tighter one is the limit."""
    grants = ledger.grants_active_at(conn, key.team_id, now)
    free = available(grants, now, now, reservations.team_hold(conn, key.team_id, now))
    left: int | None = None
    if key.cap is not None:
        current = period_at(anchor, renews, now)
        used = 0 if current is None else ledger.key_usage(conn, key.team_id, key.id, current.start)
        held = reservations.key_holds(conn, key.team_id, now).get(key.id, 0)
        left = max(key.cap - used - held, 0)
    spendable = free if left is None else min(free, left)
    if credits <= spendable:
        return Check(True, credits, spendable, None, free, left)
    limit = "key cap" if left is not None and left < free else "team"
    return Check(False, credits, spendable, limit, free, left)


def check(db: Database, key_or_id: str, credits: int, now: Instant) -> Check:
    """May this key spend `credits` now? Reads only; the answer can change a moment later."""
    check_amount(credits)
    with db.read() as conn:
        key, team = resolve_key(conn, key_or_id)
        if not key.active:
            raise Conflict(f"API key {key.id} is revoked", keyId=key.id)
        if team.suspended:
            raise TeamSuspended()
        plan = plans.get_plan(conn, team.plan_id)
        renews = plan.renews if plan is not None else True
        return _admit(conn, key, credits, now, renews, team.anchor)


def settle(
    db: Database,
    reservation_id: str,
    credits: int,
    now: Instant,
    *,
    final: bool,
    idempotency_key: str | None = None,
    as_total: bool = False,
    job_id: str | None = None,
) -> ReservationView:
    """Charge `credits` against the reservation; with `as_total`, `credits` is what the work has
    cost in all, and only what was not settled yet is charged (decided under the team lock, so
    reports of the same total from several processes charge it once)."""
    check_amount(credits)
    check_idempotency_key(idempotency_key)
    digest = idempotency.request_hash(
        "settle", {"reservation": reservation_id, "credits": credits, "final": final}
    )
    with db.write() as conn:
        book = TeamBook.open(conn, _find(conn, reservation_id).team_id, now)
        previous = book.replay(idempotency_key, digest)
        if previous is not None:
            return _replayed(previous)
        current = _find(conn, reservation_id)  # re-read under the lock
        if current.status != "open":
            raise Conflict(
                f"Reservation {reservation_id} is {current.status}",
                reservationStatus=current.status,
            )
        if as_total:
            credits = max(credits - current.settled, 0)
        if job_id is not None and current.job_id is None:  # e.g. the scrape id of an answer
            if not final:  # a final settlement names it as it closes: one statement fewer
                reservations.hand_over(conn, book.team.id, current.id, job_id)
            current = replace(current, job_id=job_id)
        posted = book.charge(
            book.key(current.key_id),
            credits,
            now,
            Details(current.endpoint, current.api_version, current.job_id, current.target),
            held=book.team_held - current.holding,
            overage_ok=True,
            check_cap=False,
            reservation_id=current.id,
        )
        book.flush()
        reservations.add_settled(conn, book.team.id, current.id, credits)
        after = replace(current, settled=current.settled + credits)
        if final:
            reservations.close(conn, book.team.id, current.id, "settled", now, current.job_id)
            after = replace(after, status="settled", closed_at=now)
        # What others hold did not change; this reservation now holds `after.holding`.
        book.team_held += after.holding - current.holding
        view = _view(conn, after, now, overage=posted.overage, remaining=book.available_now())
        book.remember(idempotency_key, digest, posted.movement_id, _stored(view))
        book.flush()
        return view


def release(
    db: Database, reservation_id: str, now: Instant, idempotency_key: str | None = None
) -> ReservationView:
    """Close the reservation with nothing more charged. Releasing twice is harmless."""
    check_idempotency_key(idempotency_key)
    with db.write() as conn:
        found = _find(conn, reservation_id)
        lock_team(conn, found.team_id, now)
        current = _find(conn, reservation_id)
        if current.status == "open":
            reservations.close(conn, current.team_id, current.id, "released", now)
        return _view(conn, _find(conn, reservation_id), now)


def extend(db: Database, reservation_id: str, more: int, now: Instant) -> bool:
    """Hold `more` credits on an open reservation, admitted as a new hold would be (team
    balance, then the key's cap); False, and nothing changed, if they do not fit."""
    check_amount(more, allow_zero=False)
    with db.write() as conn:
        team, plan = lock_team(conn, _find(conn, reservation_id).team_id, now)
        current = _find(conn, reservation_id)
        if current.status != "open" or team.suspended:
            return False
        verdict = _admit(
            conn, _active_key(conn, current.key_id), more, now, plan.renews, team.anchor
        )
        if not verdict.allowed:
            return False
        reservations.set_amount(conn, team.id, current.id, current.amount + more)
        return True


def release_orphans(db: Database, live: list[str], now: Instant, limit: int = 100) -> int:
    """Release the holds of requests whose gateway process is not among `live`: it stopped
    (kill -9, a crash) and will never settle them."""
    with db.read() as conn:
        found = reservations.orphaned(conn, live, limit)
    released = 0
    for team_id, reservation_id in found:
        with db.write() as conn:
            lock_team(conn, team_id, now)
            current = _find(conn, reservation_id)  # re-read: a job may have taken it over
            if current.status == "open" and current.owner is not None and current.owner not in live:
                reservations.close(conn, team_id, current.id, "released", now)
                released += 1
    return released


def get(db: Database, reservation_id: str, now: Instant) -> ReservationView:
    with db.read() as conn:
        return _view(conn, _find(conn, reservation_id), now)


def expire_due(db: Database, now: Instant, limit: int = 100) -> int:
    """Record expiry of reservations past their time-to-live (the server's sweeper)."""
    with db.read() as conn:
        due = reservations.teams_with_expired(conn, now, limit)
    count = 0
    for team_id in due:
        with db.write() as conn:
            before = len(reservations.expired_open(conn, team_id, now))
            lock_team(conn, team_id, now)
            count += before
    return count


def _find(conn: Connection, reservation_id: str) -> Reservation:
    found = reservations.get_reservation(conn, reservation_id)
    if found is None:
        raise NotFound(f"Reservation {reservation_id} not found", reservationId=reservation_id)
    return found


def _active_key(conn: Connection, key_id: str) -> ApiKey:
    key = keys.get_key(conn, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found", keyId=key_id)
    if not key.active:
        raise Conflict(f"API key {key_id} is revoked", keyId=key_id)
    return key
