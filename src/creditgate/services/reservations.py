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

Each is an operation of the ledger's one write path (services/ledger.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from creditgate.domain.book import Book, Check, Details
from creditgate.domain.errors import (
    ConcurrencyLimited,
    Conflict,
    InsufficientCredits,
    InvalidInput,
    NotFound,
)
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.domain.reservations import HoldStatus, Reservation
from creditgate.domain.teams import ApiKey
from creditgate.services.ledger import (
    TeamOperation,
    check_amount,
    check_idempotency_key,
    check_texts,
    find_key,
    request_hash,
    run,
    spendable_key,
)
from creditgate.storage import book as books
from creditgate.storage import reservation_rows as reservations
from creditgate.storage.book import Wants
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

__all__ = ["Check", "ReservationView", "ReserveRequest", "release", "reserve", "settle"]

DEFAULT_TTL_MS = 60 * 60 * 1000
MAX_TTL_MS = 7 * 24 * 60 * 60 * 1000
MAX_SLOTS = 10_000_000  # as a plan's concurrency at most (services/plans.py MAX_LIMIT)


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
    slots: int = 1  # pages it wants in flight at once (a crawl's maxConcurrency); see Reserve


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
    slots: int = 1  # granted: at most what was asked, and what the plan's concurrency had free


def view(r: Reservation, book: Book, overage: int = 0) -> ReservationView:
    return ReservationView(
        id=r.id,
        team_id=r.team_id,
        key_id=r.key_id,
        credits=r.amount,
        settled=r.settled,
        holding=r.holding if r.expires_at > book.now else 0,
        status=str(r.status),
        created_at=r.created_at,
        expires_at=r.expires_at,
        closed_at=r.closed_at,
        overage=overage,
        remaining_credits=book.available_now(),
        slots=r.slots,
    )


def _replayed(previous: dict[str, Any]) -> ReservationView:
    return ReservationView(**{**previous, "replayed": True})


class _OnReservation:
    """An operation on an existing reservation: found by id, then read again under the lock."""

    def __init__(self, reservation_id: str, now: Instant, team_id: str | None) -> None:
        self.reservation_id, self.now, self._team = reservation_id, now, team_id

    def find(self, tx: Tx) -> str:
        if self._team is None:
            self._team = books.teams_of_reservations(tx, [self.reservation_id]).get(
                self.reservation_id
            )
        if self._team is None:
            raise NotFound(
                f"Reservation {self.reservation_id} not found", reservationId=self.reservation_id
            )
        return self._team

    def wants(self) -> Wants:
        return Wants(reservations=(self.reservation_id,))

    def idempotency(self) -> tuple[str, str] | None:
        return None

    def replayed(self, stored: dict[str, Any]) -> Any:
        return _replayed(stored)

    def spends_through(self) -> None:
        return None  # admitted when it was reserved; the key may be revoked since

    def movement(self, result: Any) -> str:
        raise AssertionError(f"{type(self).__name__} takes no idempotency key")


# --- reserve ---------------------------------------------------------------------------------


class Reserve:
    """Hold credits. With `max_open` (the plan's concurrency, in pages): the hold takes
    `request.slots` of the team's free slots, or as many as are free, and is refused while
    none is (every open hold's slots count until it closes or expires).
    `owner`: the gateway process whose request holds it (released if that process dies).
    `queued`: a job start accepted while no slot is free: its credits are held and it takes no
    slot yet (TakeSlots gives it its slots when it starts)."""

    def __init__(
        self,
        request: ReserveRequest,
        now: Instant,
        *,
        max_open: int | None = None,
        owner: str | None = None,
        key: ApiKey | None = None,
        queued: bool = False,
    ) -> None:
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
        if not 1 <= request.slots <= MAX_SLOTS:
            raise InvalidInput(f"slots must be between 1 and {MAX_SLOTS}", field="slots")
        self.request, self.now, self.max_open, self.owner = request, now, max_open, owner
        self._key = key
        self.queued = queued

    def find(self, tx: Tx) -> str:
        if self._key is None:
            self._key = find_key(tx, self.request.key)
        return self._key.team_id

    def wants(self) -> Wants:
        assert self._key is not None
        guarded = () if self.request.idempotency_key is None else (self.request.idempotency_key,)
        return Wants(keys=(self._key.id,), idempotency=guarded)

    def idempotency(self) -> tuple[str, str] | None:
        if self.request.idempotency_key is None:
            return None
        assert self._key is not None
        content = {**asdict(self.request), "key": self._key.id}
        del content["idempotency_key"]
        return self.request.idempotency_key, request_hash("reserve", content)

    def replayed(self, stored: dict[str, Any]) -> ReservationView:
        return _replayed(stored)

    def spends_through(self) -> str:
        assert self._key is not None
        return self._key.id

    def movement(self, result: ReservationView) -> str:
        return result.id  # the hold

    def apply(self, book: Book) -> ReservationView:
        r = self.request
        key = book.key(self.spends_through())  # live, in a team not suspended (ledger.apply)
        slots = 0 if self.queued else r.slots
        if self.max_open is not None and not self.queued:
            if book.running >= self.max_open:
                raise ConcurrencyLimited(book.running, self.max_open)
            slots = min(slots, self.max_open - book.running)
        verdict = book.admit(key, r.credits)
        if not verdict.allowed:
            raise InsufficientCredits(
                r.credits, verdict.remaining, reason=verdict.limited_by or "team"
            )
        held = Reservation(
            id=new_id(book.now),
            team_id=book.team.id,
            key_id=key.id,
            amount=r.credits,
            settled=0,
            status=HoldStatus.OPEN,
            endpoint=r.endpoint,
            api_version=r.api_version,
            job_id=r.job_id,
            target=r.target,
            created_at=book.now,
            expires_at=book.now + r.ttl_ms,
            closed_at=None,
            owner=self.owner,
            slots=slots,
        )
        book.open_hold(held)
        return view(held, book)


class Refused(str):
    """TakeSlots' answer when the queued start may never start; its hold was released."""


class TakeSlots(_OnReservation):
    """Give a queued start's hold its slots, as Reserve would (the plan's concurrency is the
    most the team's open holds may take; a start finding fewer free than it wants gets the free
    ones): the granted slots, ConcurrencyLimited (nothing changed) while none is free. The hold
    is renewed for a job's time. A start that may no longer start — its hold closed or expired,
    its team suspended, its key revoked or expired since it was accepted — gets `Refused`, and
    its hold is released in the same write."""

    def __init__(
        self, reservation_id: str, wanted: int, ttl_ms: int, now: Instant, team_id: str
    ) -> None:
        super().__init__(reservation_id, now, team_id)
        self.wanted, self.ttl_ms = wanted, ttl_ms

    def apply(self, book: Book) -> int | Refused:
        current = book.reservation(self.reservation_id)
        if current.status != HoldStatus.OPEN:
            return Refused(f"its hold is {current.status}")
        key = book.key(current.key_id)
        reason = None
        if book.team.suspended:
            reason = "the team is suspended"
        elif not key.live_at(book.now):
            reason = "its API key was revoked or has expired"
        if reason is not None:
            book.change_hold(replace(current, status=HoldStatus.RELEASED, closed_at=book.now))
            return Refused(reason)
        limit = book.plan.concurrency
        if book.running >= limit:
            raise ConcurrencyLimited(book.running, limit)
        slots = max(min(self.wanted, limit - book.running), 1)
        expires = max(current.expires_at, book.now + self.ttl_ms)
        book.change_hold(replace(current, slots=slots, expires_at=expires))
        return slots


def reserve(
    db: Database,
    request: ReserveRequest,
    now: Instant,
    *,
    max_open: int | None = None,
    owner: str | None = None,
) -> ReservationView:
    result: ReservationView = run(db, Reserve(request, now, max_open=max_open, owner=owner))
    return result


# --- settle ----------------------------------------------------------------------------------


class Settle(_OnReservation):
    """Charge `credits` against the reservation; with `as_total`, `credits` is what the work
    has cost in all, and only what was not settled yet is charged (decided under the team
    lock, so reports of the same total from several processes charge it once)."""

    def __init__(
        self,
        reservation_id: str,
        credits: int,
        now: Instant,
        *,
        final: bool,
        idempotency_key: str | None = None,
        as_total: bool = False,
        job_id: str | None = None,
        team_id: str | None = None,
    ) -> None:
        check_amount(credits)
        check_idempotency_key(idempotency_key)
        super().__init__(reservation_id, now, team_id)
        self.credits, self.final, self.key = credits, final, idempotency_key
        self.as_total, self.job_id = as_total, job_id
        self._charged: str | None = None

    def wants(self) -> Wants:
        return Wants(
            reservations=(self.reservation_id,),
            idempotency=() if self.key is None else (self.key,),
        )

    def idempotency(self) -> tuple[str, str] | None:
        if self.key is None:
            return None
        content = {"reservation": self.reservation_id, "credits": self.credits, "final": self.final}
        return self.key, request_hash("settle", content)

    def movement(self, result: ReservationView) -> str:
        assert self._charged is not None, "movement() after apply()"
        return self._charged  # the charge it made, not the reservation

    def apply(self, book: Book) -> ReservationView:
        current = book.reservation(self.reservation_id)
        if current.status != HoldStatus.OPEN:
            raise Conflict(
                f"Reservation {current.id} is {current.status}",
                reservationStatus=str(current.status),
            )
        credits = max(self.credits - current.settled, 0) if self.as_total else self.credits
        owner = current.owner
        if self.job_id is not None and current.job_id is None:  # e.g. the scrape id of an answer
            current = replace(current, job_id=self.job_id)
            if not self.final:  # the job, followed by any process, owns the hold from now on
                owner = None
        after = replace(current, settled=current.settled + credits, owner=owner)
        if self.final:
            after = replace(after, status=HoldStatus.SETTLED, closed_at=book.now)
        posted = book.charge(  # spends the hold, then changes it to `after`, then alerts
            book.key(current.key_id),
            credits,
            book.now,
            Details(current.endpoint, current.api_version, current.job_id, current.target),
            overage_ok=True,
            check_cap=False,
            settles=after,
        )
        self._charged = posted.movement_id
        return view(after, book, overage=posted.overage)


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
    op = Settle(
        reservation_id,
        credits,
        now,
        final=final,
        idempotency_key=idempotency_key,
        as_total=as_total,
        job_id=job_id,
    )
    result: ReservationView = run(db, op)
    return result


# --- release, extend, orphans ----------------------------------------------------------------


class Release(_OnReservation):
    """Close the reservation with nothing more charged. Releasing twice is harmless."""

    def apply(self, book: Book) -> ReservationView:
        current = book.reservation(self.reservation_id)
        if current.status == HoldStatus.OPEN:
            current = replace(current, status=HoldStatus.RELEASED, closed_at=book.now)
            book.change_hold(current)
        return view(current, book)


def release(
    db: Database, reservation_id: str, now: Instant, idempotency_key: str | None = None
) -> ReservationView:
    check_idempotency_key(idempotency_key)
    result: ReservationView = run(db, Release(reservation_id, now, None))
    return result


class Extend(_OnReservation):
    """Hold `more` credits on an open reservation, admitted as a new hold would be (team
    balance, then the key's cap); False, and nothing changed, if they do not fit, or if the
    key that holds it is revoked or expired (its crawl may not grow: it is cancelled)."""

    def __init__(self, reservation_id: str, more: int, now: Instant) -> None:
        check_amount(more, allow_zero=False)
        super().__init__(reservation_id, now, None)
        self.more = more

    def wants(self) -> Wants:
        return Wants(reservations=(self.reservation_id,))

    def apply(self, book: Book) -> bool:
        current = book.reservation(self.reservation_id)
        key = book.key(current.key_id)
        if current.status != HoldStatus.OPEN or book.team.suspended or not key.live_at(book.now):
            return False
        if not book.admit(key, self.more).allowed:
            return False
        book.change_hold(replace(current, amount=current.amount + self.more))
        return True


def extend(db: Database, reservation_id: str, more: int, now: Instant) -> bool:
    result: bool = run(db, Extend(reservation_id, more, now))
    return result


class Prolong(_OnReservation):
    """Keep an open hold until `until` (the job it pays for still runs): its credits and
    slots stay held. False, and nothing changed, if it is closed, already past its time (it
    held nothing since: it is not revived), or lasts that long already."""

    def __init__(self, reservation_id: str, until: Instant, now: Instant) -> None:
        super().__init__(reservation_id, now, None)
        self.until = until

    def apply(self, book: Book) -> bool:
        current = book.reservation(self.reservation_id)
        if current.status != HoldStatus.OPEN or not book.now < current.expires_at < self.until:
            return False
        book.change_hold(replace(current, expires_at=self.until))
        return True


class EndBy(_OnReservation):
    """An open hold ends at `until` at the latest (its credits and slots held until then): for
    work that may still run upstream but will never be settled. False if it is closed or ends
    sooner already."""

    def __init__(self, reservation_id: str, until: Instant, now: Instant) -> None:
        super().__init__(reservation_id, now, None)
        self.until = until

    def apply(self, book: Book) -> bool:
        current = book.reservation(self.reservation_id)
        if current.status != HoldStatus.OPEN or current.expires_at <= self.until:
            return False
        book.change_hold(replace(current, expires_at=self.until))
        return True


def prolong(db: Database, reservation_id: str, until: Instant, now: Instant) -> bool:
    result: bool = run(db, Prolong(reservation_id, until, now))
    return result


class ReleaseOrphan(_OnReservation):
    """Release a hold whose gateway process is not among `live`: it stopped (kill -9, a
    crash) and will never settle it. A job may have taken it over since: then it stays."""

    def __init__(self, reservation_id: str, team_id: str, live: list[str], now: Instant) -> None:
        super().__init__(reservation_id, now, team_id)
        self.live = live

    def apply(self, book: Book) -> bool:
        current = book.reservation(self.reservation_id)
        if current.status != HoldStatus.OPEN or current.owner is None or current.owner in self.live:
            return False
        book.change_hold(replace(current, status=HoldStatus.RELEASED, closed_at=book.now))
        return True


def release_orphans(db: Database, live: list[str], now: Instant, limit: int = 100) -> int:
    """Release the holds of requests whose gateway process is not among `live`."""
    with db.read() as conn:
        found = reservations.orphaned(conn, live, limit)
    return sum(
        bool(run(db, ReleaseOrphan(reservation_id, team_id, live, now)))
        for team_id, reservation_id in found
    )


# --- reads -----------------------------------------------------------------------------------


def _read_book(db: Database, team_id: str, now: Instant, wants: Wants) -> Book:
    """The team's book as a write would see it now, rolled forward in memory: no lock taken
    and nothing written (a rollover that is due is written by the next write)."""
    with db.read() as conn:
        book = books.load(Tx.of(conn), team_id, now, wants, lock=False)
    book.roll_forward()
    return book


def check(db: Database, key_or_id: str, credits: int, now: Instant) -> Check:
    """May this key spend `credits` now? Reads only; the answer can change a moment later."""
    check_amount(credits)
    with db.read() as conn:
        key = find_key(Tx.of(conn), key_or_id)
    book = _read_book(db, key.team_id, now, Wants(keys=(key.id,)))
    return book.admit(spendable_key(book, key.id), credits)


def get(db: Database, reservation_id: str, now: Instant) -> ReservationView:
    with db.read() as conn:
        team = books.teams_of_reservations(Tx.of(conn), [reservation_id]).get(reservation_id)
    if team is None:
        raise NotFound(f"Reservation {reservation_id} not found", reservationId=reservation_id)
    book = _read_book(db, team, now, Wants(reservations=(reservation_id,)))
    return view(book.reservation(reservation_id), book)


class ExpireHolds(TeamOperation):
    """Nothing but rolling forward: closes the team's holds past their time-to-live."""

    def apply(self, book: Book) -> int:
        return book.holds_expired


def expire_due(db: Database, now: Instant, limit: int = 100) -> int:
    """Record expiry of reservations past their time-to-live (the server's sweeper)."""
    with db.read() as conn:
        due = reservations.teams_with_expired(conn, now, limit)
    return sum(int(run(db, ExpireHolds(team_id, now))) for team_id in due)
