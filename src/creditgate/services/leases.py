"""Credit leases (domain/leases.py): the ledger operations that take and draw a lease, and the
manager through which a gateway process admits synchronous metered requests with them.

A scrape on a lease costs one write instead of two, and that write is shared: `Draw`, the
request's exact charge, goes through the group-commit writer with every other request of the
team that finished meanwhile, in one transaction (services/writer.py). The answer's last chunk
is released only after that transaction committed (gateway/proxy.py, _Tee): a client that read
a whole answer finds its charge in the ledger, with its key, endpoint, target and scrape id
(the rows per-key usage and history read), and a crash loses no charge a client was told of.

Bounds (stated in README, "Credit leases"):
- Overdraft: none beyond today's. A lease is a hold, admitted under the team's lock against
  the team's balance and the key's cap; requests are admitted in memory only within it. A
  charge above its estimate spends the lease's rest, then free credits, then goes to overage,
  as a settlement past its hold always has.
- Page slots: a lease's slots are open-hold slots; the plan's concurrency caps the sum of every
  open hold's and lease's slots across processes, under the team's lock. A process whose lease
  has no free slot takes a hold per request (or waits in the team's queue) as before. A lease
  admits for `LIFE_MS` at most and is given back when drained; an idle one after `IDLE_MS`: a
  process keeps slots another process wants for at most LIFE_MS plus its longest request in
  flight on it (and a sweep period, SWEEP_S).
- Near empty: a lease takes at most 1/HEADROOM of what the key may spend; one that would be
  smaller than a request is not taken (a hold per request). A process that can no longer admit
  on its lease gives it back before falling back, once its requests on it ended; so within one
  process no request is refused while the team has the credits. Another process's lease keeps
  its rest for at most LIFE_MS (or IDLE_MS idle) plus its requests in flight.
- Revoked key, suspended team: no request is admitted after the auth snapshot (refreshed per
  request, account.snapshot) refuses it; the lease, then idle, is given back within IDLE_MS
  (+ SWEEP_S). A new lease is refused for them under the lock, as a hold is.
- kill -9: the lease is its process's hold, released by the orphan sweep (services/processes.py)
  at once by a restart on the same host, else within DEAD_AFTER_MS plus a sweep; what was drawn
  stays charged; requests in flight were never told and are not charged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from creditgate.domain.book import Book, Details
from creditgate.domain.errors import ConcurrencyLimited, InsufficientCredits, LedgerError
from creditgate.domain.instants import Instant
from creditgate.domain.leases import (
    IDLE_MS,
    LEASE,
    LIFE_MS,
    Lease,
    granted_credits,
    wanted_credits,
    wanted_slots,
)
from creditgate.domain.reservations import HoldStatus
from creditgate.domain.teams import ApiKey
from creditgate.services.ledger import Operation, check_amount
from creditgate.services.reservations import (
    Release,
    ReservationView,
    Reserve,
    ReserveRequest,
    _OnReservation,
)

log = logging.getLogger("creditgate.leases")

LEASE_TTL_MS = 15 * 60 * 1000  # a backstop only: a live process gives a lease back in seconds
SWEEP_S = 0.2  # how often idle and drained leases are given back


class TakeLease(Reserve):
    """Open a lease: a hold owned by `owner` of up to `wanted` credits (at most a HEADROOM-th of
    what the key may spend) and up to `slots` page slots within the plan's concurrency. None,
    and nothing changed, when the key may spend too little for a lease worth taking."""

    def __init__(
        self,
        key: ApiKey,
        wanted: int,
        cost: int,
        slots: int,
        now: Instant,
        *,
        owner: str,
        max_open: int,
    ) -> None:
        request = ReserveRequest(
            key=key.id, credits=max(wanted, 1), endpoint=LEASE, ttl_ms=LEASE_TTL_MS, slots=slots
        )
        super().__init__(request, now, max_open=max_open, owner=owner, key=key)
        self.cost = cost

    def apply(self, book: Book) -> ReservationView | None:  # type: ignore[override]
        assert self._key is not None
        spendable = book.admit(book.active_key(self._key.id), 0).remaining
        granted = granted_credits(self.request.credits, spendable, self.cost)
        if granted == 0:
            return None
        self.request = replace(self.request, credits=granted)
        return super().apply(book)


class Draw(_OnReservation):
    """Charge one request's exact cost from a lease, with the request's details (the rows of
    its key's usage and history). A lease closed meanwhile (its process taken for dead, or
    past its time-to-live) no longer holds anything: the request, admitted while it was open,
    is charged all the same, from the team's credits. The charge's overage: what it took
    beyond what was held and free."""

    def __init__(
        self, lease_id: str, team_id: str, credits: int, now: Instant, details: Details
    ) -> None:
        check_amount(credits)
        super().__init__(lease_id, now, team_id)
        self.credits, self.details = credits, details

    def apply(self, book: Book) -> int:
        current = book.reservation(self.reservation_id)
        key = book.key(current.key_id)
        settles = None
        if current.status == HoldStatus.OPEN:
            settles = replace(current, settled=current.settled + self.credits)
        posted = book.charge(
            key,
            self.credits,
            book.now,
            self.details,
            overage_ok=True,
            check_cap=False,  # admitted within the lease, which the cap counted when taken
            settles=settles,
        )
        return posted.overage


@dataclass(frozen=True, slots=True)
class Ticket:
    """A request admitted on a lease: what it reserved, and what its charge will say."""

    id: str
    lease: Lease
    estimate: int
    endpoint: str | None
    api_version: str | None
    target: str | None


Write = Callable[[Operation[Any], str], Awaitable[Any]]
Clock = Callable[[], Instant]


def _ms() -> float:
    return time.monotonic() * 1000


class LeaseManager:
    """A gateway process's leases: one admitting lease per (team, key) at a time, and the
    retired ones until their requests are drawn and they are given back."""

    def __init__(self, write: Write, clock: Clock, owner: str) -> None:
        self._write, self._clock, self.owner = write, clock, owner
        self._leases: dict[tuple[str, str], Lease] = {}  # admitting
        self._last: dict[tuple[str, str], Lease] = {}  # the latest, for sizing the next
        self._retired: dict[str, Lease] = {}  # not admitting, not given back yet
        self._tickets: dict[str, Ticket] = {}
        self._taking: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._no_lease_until: dict[tuple[str, str], float] = {}

    # --- admission -------------------------------------------------------------------------

    async def admit(
        self, team_id: str, key: ApiKey, concurrency: int, request: ReserveRequest
    ) -> ReservationView | None:
        """Admit a request on the key's lease (taking one if need be): its ticket, shaped as
        the hold it stands for; None when it must take a hold of its own (no lease worth
        taking, no slot free on the lease, or none in the team)."""
        slot = (team_id, key.id)
        cost = request.credits
        for _ in range(2):  # the current lease, then one taken (or being taken) now
            lease = self._leases.get(slot)
            now = _ms()
            if lease is not None and now - lease.opened_ms >= LIFE_MS:
                await self._retire(lease)
                lease = None
            if lease is not None:
                if lease.admit(cost, now):
                    return self._ticket(lease, request)
                if lease.free >= cost and lease.slots >= concurrency:
                    return None  # every slot of the plan taken: a hold of its own, or the queue
                # Short of credits (its rest back before any other is taken), or of slots (one
                # with twice as many replaces it): no more admissions on it.
                await self._retire(lease)
            if self._no_lease_until.get(slot, 0.0) > now:
                return None
            taking = self._taking.get(slot)
            if taking is not None:
                await asyncio.shield(taking)
                continue
            await self._take(slot, key, concurrency, cost)
        return None

    async def _take(self, slot: tuple[str, str], key: ApiKey, concurrency: int, cost: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._taking[slot] = done
        try:
            previous = self._last.get(slot)
            now = _ms()
            rate = 0.0 if previous is None else previous.rate(now)
            op = TakeLease(
                key,
                wanted_credits(cost, rate),
                cost,
                wanted_slots(previous, 0, concurrency),
                self._clock(),
                owner=self.owner,
                max_open=concurrency,
            )
            try:
                view: ReservationView | None = await self._write(op, slot[0])
            except (ConcurrencyLimited, InsufficientCredits):
                view = None
            if view is None:  # near empty, or no slot: holds per request for a while
                self._no_lease_until[slot] = now + IDLE_MS
                return
            now = _ms()
            lease = Lease(view.id, slot[0], slot[1], view.credits, view.slots, now, now)
            self._leases[slot] = self._last[slot] = lease
        finally:
            del self._taking[slot]
            done.set_result(None)

    def _ticket(self, lease: Lease, request: ReserveRequest) -> ReservationView:
        ticket = Ticket(
            f"lease-{uuid.uuid4()}",
            lease,
            request.credits,
            request.endpoint,
            request.api_version,
            request.target,
        )
        self._tickets[ticket.id] = ticket
        at = self._clock()
        return ReservationView(
            id=ticket.id,
            team_id=lease.team_id,
            key_id=lease.key_id,
            credits=request.credits,
            settled=0,
            holding=request.credits,
            status=str(HoldStatus.OPEN),
            created_at=at,
            expires_at=at + LEASE_TTL_MS,
            closed_at=None,
            overage=0,
            remaining_credits=lease.free,
            slots=1,
        )

    # --- after the answer ------------------------------------------------------------------

    def holds(self, ticket_id: str) -> bool:
        return ticket_id in self._tickets

    async def draw(self, ticket_id: str, credits: int, job_id: str | None) -> int:
        """Charge an admitted request its exact cost from its lease; returns once the charge
        committed (with the team's other pending writes): its overage."""
        ticket = self._tickets.pop(ticket_id)
        lease = ticket.lease
        lease.drawing(ticket.estimate, credits)
        details = Details(ticket.endpoint, ticket.api_version, job_id, ticket.target)
        op = Draw(lease.id, lease.team_id, credits, self._clock(), details)
        try:
            overage: int = await self._write(op, lease.team_id)
            return overage
        finally:
            lease.drawn()

    def drop(self, ticket_id: str) -> bool:
        """A request on a lease that is not charged: its estimate and slot back. False if the
        id is no ticket (a hold of its own)."""
        ticket = self._tickets.pop(ticket_id, None)
        if ticket is None:
            return False
        ticket.lease.dropped(ticket.estimate)
        return True

    # --- giving back -----------------------------------------------------------------------

    async def _retire(self, lease: Lease) -> None:
        """No more admissions on `lease`; given back now if nothing is in flight on it."""
        lease.admitting = False
        slot = (lease.team_id, lease.key_id)
        if self._leases.get(slot) is lease:
            del self._leases[slot]
        self._retired[lease.id] = lease
        if lease.drained:
            await self._give_back(lease)

    async def _give_back(self, lease: Lease) -> None:
        try:
            await self._write(Release(lease.id, self._clock(), lease.team_id), lease.team_id)
        except LedgerError:
            log.exception("lease %s could not be given back", lease.id)
        except Exception:  # the database is down: the next sweep tries again
            log.warning("lease %s could not be given back yet", lease.id, exc_info=True)
            return
        self._retired.pop(lease.id, None)

    async def sweep(self) -> None:
        """Give back idle leases, and retired ones whose requests are all drawn."""
        now = _ms()
        for lease in list(self._leases.values()):
            if lease.drained and now - lease.used_ms >= IDLE_MS:
                await self._retire(lease)
        for lease in list(self._retired.values()):
            if lease.drained:
                await self._give_back(lease)
        stale = [s for s, until in self._no_lease_until.items() if until <= now]
        for s in stale:
            del self._no_lease_until[s]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.sweep()
            except Exception:  # a round failing must not stop the next one
                log.warning("lease sweep failed", exc_info=True)

    async def close(self) -> None:
        """At shutdown: every lease retired; the drained ones given back (the rest, with
        requests still in flight, are released as this process's orphans once it is gone)."""
        for lease in list(self._leases.values()):
            await self._retire(lease)
        for lease in list(self._retired.values()):
            if lease.drained:
                await self._give_back(lease)

    def open_leases(self) -> list[Lease]:
        return [*self._leases.values(), *self._retired.values()]
