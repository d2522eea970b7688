"""Job starts that found no slot free: accepted at once, started when the team's slots free.

A crawl, batch scrape, extract, llms.txt or deep research start that finds every slot of its
team's plan taken (or earlier starts of the team still waiting: a later one never overtakes)
is accepted with an id of creditgate's own, as Firecrawl accepts a job and queues it. In one
write transaction its credits are held — the same admission as any hold: key cap, suspended
team, 402 — with no slot yet, and the start is stored (`queued_starts`), so it survives any
process. The follower round of any gateway process starts the team's oldest queued start once
a slot is free:

  claim     under the team's lock, in one write: it is the team's oldest not yet started and
            no start of the team is being forwarded; its hold takes its slots (TakeSlots: as
            many as it wants and are free); it becomes `starting`, claimed by this process.
  forward   to the upstream, capped at the slots it got (domain/concurrency.py).
  record    in one write: the followed job (the client's id, the upstream's beside it) takes
            the hold over, and the start becomes `started` — only if this process still holds
            its claim; if not (it was taken for dead meanwhile), the job is cancelled upstream.

A start left `starting` by a process that died (kill -9 between the claim and the record) is
ambiguous: the upstream may or may not have started it, and the upstream — shared by every
team under one key — has no way to tell whose crawl is whose. It is never sent again: it is
marked failed, with an error saying so, and its hold (its slots with it) ends one page grace
later (`abandoned`). A job the dead process did start upstream in that window runs there
unmetered, though not beside the team's next start; the window is one upstream call.
Queued starts not yet claimed are never lost: any process starts them, exactly once (the claim
is a conditional update under the team's lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from creditgate.domain.errors import ConcurrencyLimited, LedgerError
from creditgate.domain.instants import Instant
from creditgate.services import jobs, ledger
from creditgate.services.reservations import (
    EndBy,
    Prolong,
    Refused,
    Release,
    ReservationView,
    Reserve,
    TakeSlots,
)
from creditgate.storage import queued_rows as store
from creditgate.storage.database import Database
from creditgate.storage.queued_rows import QueuedStart, State
from creditgate.storage.tx import Tx

__all__ = ["QueuedStart", "State", "accept", "claim_next"]

STARTING_LEASE_MS = 10 * 60 * 1000  # a start still `starting` this long is abandoned


@dataclass(frozen=True, slots=True)
class Claimed:
    start: QueuedStart
    slots: int


def accept(db: Database, hold: Reserve, start: QueuedStart) -> ReservationView:
    """Hold the start's credits (no slot) and store it, in one write. Raises the hold's
    refusal (InsufficientCredits, TeamSuspended, ...), storing nothing."""
    with db.transaction() as tx:
        team_id = hold.find(tx)
        (outcome,) = ledger.apply(tx, team_id, [hold])
        if isinstance(outcome, LedgerError):
            raise outcome
        assert isinstance(outcome, ReservationView)
        store.insert(tx, replace(start, team_id=team_id, reservation_id=outcome.id))
    return outcome


def waiting(db: Database, team_id: str) -> bool:
    """Has the team starts accepted and not yet started? Then a new one waits behind them."""
    with db.read() as conn:
        return store.has_waiting(Tx.of(conn), team_id)


def get(db: Database, team_id: str, start_id: str) -> QueuedStart | None:
    """The team's queued start by its id; None for another team's (never a hint it exists)."""
    with db.read() as conn:
        return store.get(Tx.of(conn), team_id, start_id)


def queued_count(db: Database, team_id: str) -> int:
    with db.read() as conn:
        return store.count_queued(Tx.of(conn), team_id)


def queued_crawls(db: Database, team_id: str) -> list[tuple[str, str | None]]:
    with db.read() as conn:
        return store.queued_crawls(Tx.of(conn), team_id)


def teams_waiting(db: Database, limit: int = 100) -> list[str]:
    with db.read() as conn:
        return store.teams_waiting(Tx.of(conn), limit)


def claim_next(
    db: Database, team_id: str, process_id: str, now: Instant
) -> Claimed | QueuedStart | None:
    """Take the team's oldest queued start for this process, with its slots (see the module's
    docstring). None: nothing to start now (none queued, one being forwarded, or no slot
    free). A QueuedStart: the oldest may never start (TakeSlots refused it, its hold is
    released) and is now failed."""
    with db.transaction() as tx:
        start = store.oldest_waiting(tx, team_id)
        if start is None or start.state is not State.QUEUED:
            return None
        take = TakeSlots(start.reservation_id, start.slots, jobs.JOB_HOLD_MS, now, team_id)
        (outcome,) = ledger.apply(tx, team_id, [take])
        if isinstance(outcome, ConcurrencyLimited):
            return None
        if isinstance(outcome, LedgerError | Refused):
            error = f"The job was not started: {outcome}."
            if isinstance(outcome, LedgerError):
                (_released,) = ledger.apply(
                    tx, team_id, [Release(start.reservation_id, now, team_id)]
                )
            store.move(tx, start, State.QUEUED, State.FAILED, now, error=error)
            return replace(start, state=State.FAILED, error=error)
        assert isinstance(outcome, int)
        lease = now + STARTING_LEASE_MS
        if not store.move(
            tx, start, State.QUEUED, State.STARTING, now, claimed_by=process_id, lease_until=lease
        ):
            raise RuntimeError("a queued start changed under the team's lock")
        return Claimed(replace(start, state=State.STARTING, claimed_by=process_id), outcome)


def record_started(
    db: Database, start: QueuedStart, new: jobs.NewJob, now: Instant, poll_ms: int
) -> bool:
    """The upstream started it: in one write, the job is followed (its hold handed over)
    and the start marked started. False (nothing written) if this process no longer holds its
    claim. Conflict if the upstream's id is followed already (nothing written)."""
    with db.write() as conn:
        tx = Tx.of(conn)
        if not store.move(
            tx, start, State.STARTING, State.STARTED, now, upstream_id=new.upstream_id
        ):
            return False
        jobs.insert_new(conn, new, now, poll_ms)
    return True


def fail(
    db: Database,
    start: QueuedStart,
    frm: State,
    error: str,
    now: Instant,
    *,
    release: bool,
    hold_until: Instant | None = None,
) -> bool:
    """Mark a start failed (from `frm`, if it still is there) and, with `release`, release its
    hold, or with `hold_until`, end it then (its slots held until its pages may have run), in
    one write. False if it had moved on."""
    with db.transaction() as tx:
        if not store.move(tx, start, frm, State.FAILED, now, error=error):
            return False
        if release:
            ledger.apply(tx, start.team_id, [Release(start.reservation_id, now, start.team_id)])
        elif hold_until is not None:
            ledger.apply(tx, start.team_id, [EndBy(start.reservation_id, hold_until, now)])
    return True


def cancel(db: Database, team_id: str, start_id: str, now: Instant) -> QueuedStart | None:
    """Cancel a start still queued: it never reaches the upstream, its hold is released. The
    start as it is after (cancelled, or whatever it had become); None if the team has none."""
    with db.transaction() as tx:
        start = store.get(tx, team_id, start_id)
        if start is None or start.state is not State.QUEUED:
            return start
        store.move(tx, start, State.QUEUED, State.CANCELLED, now)
        ledger.apply(tx, team_id, [Release(start.reservation_id, now, team_id)])
    return replace(start, state=State.CANCELLED)


def renew(db: Database, now: Instant, limit: int = 100) -> int:
    """Queued starts keep their credits however long they wait: a hold that would end within
    the renewal margin is prolonged by a job's time."""
    with db.read() as conn:
        due = store.queued_holds_expiring(Tx.of(conn), now + jobs.RENEW_BEFORE_MS, limit)
    renewed = 0
    for _team, reservation_id in due:
        op = Prolong(reservation_id, now + jobs.JOB_HOLD_MS, now)
        renewed += bool(ledger.run(db, op))
    return renewed


def abandoned(
    db: Database,
    live_processes: Callable[[], list[str]],
    now: Instant,
    grace_ms: int,
    limit: int = 100,
) -> list[QueuedStart]:
    """Starts left `starting` by a process that is gone (or past their lease): never sent
    again (the upstream may have started them), marked failed. Their holds, with their slots,
    end `grace_ms` (the page grace) later, not at once: the job the upstream may have started
    runs its pages meanwhile, and the team's next start must not run beside them (found by an
    outside tester: a kill -9 mid-start let the next start run at once, 4 pages on 2 slots)."""
    with db.read() as conn:
        found = store.starting(Tx.of(conn), limit)
    if not found:
        return []
    live = live_processes()
    given_up = []
    for start in found:
        lease_over = start.lease_until is not None and start.lease_until <= now
        if start.claimed_by in live and not lease_over:
            continue
        error = (
            "The job's start was interrupted (the gateway process forwarding it stopped); it "
            "was not retried, since the upstream may have started it. Start it again."
        )
        if fail(db, start, State.STARTING, error, now, release=False, hold_until=now + grace_ms):
            given_up.append(start)
    return given_up
