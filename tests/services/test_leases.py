"""Credit leases: the operations that take and draw one, and a process's manager of them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from creditgate.domain.book import Details
from creditgate.domain.errors import ConcurrencyLimited
from creditgate.domain.leases import (
    HEADROOM,
    LEASE,
    Lease,
    granted_credits,
    wanted_credits,
    wanted_slots,
)
from creditgate.domain.plans import Plan
from creditgate.services import account, keys, ledger, plans, reservations, teams
from creditgate.services.leases import Draw, LeaseManager, TakeLease
from creditgate.services.ledger import Operation
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from creditgate.storage.tables import reservations as table
from tests.conftest import START


def funded(db: Database, credits: int, *, cap: int | None = None, concurrency: int = 5) -> Any:
    plans.create_plan(db, Plan("lease-plan", 0, "month", concurrency, 1000, 1000), START)
    team = teams.create_team(db, "acme", START, plan_id="lease-plan")
    if credits:
        ledger.grant(db, ledger.GrantRequest(team.id, credits), START)
    return keys.create_key(db, team.id, START, cap=cap).key


def available(db: Database, team_id: str) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), START + 10).remaining


# --- sizing (domain/leases.py) ----------------------------------------------------------------


def test_a_lease_is_sized_to_the_rate_within_bounds() -> None:
    assert wanted_credits(1, 0.0) == 4  # at least MIN_REQUESTS
    assert wanted_credits(2, 100.0) == 2 * 201  # REFILL_MS of requests at the rate
    assert wanted_credits(1, 10**6) == 1000  # at most MAX_REQUESTS


def test_a_lease_takes_a_quarter_of_what_is_left_or_nothing() -> None:
    assert granted_credits(100, 1000, 1) == 100
    assert granted_credits(100, 200, 1) == 200 // HEADROOM
    assert granted_credits(100, 7, 2) == 0  # a quarter of 7 is less than one request of 2


def test_a_lease_admits_within_its_credits_and_slots() -> None:
    lease = Lease("l", "t", "k", credits=3, slots=2, opened_ms=0, used_ms=0)
    assert lease.admit(1, 1) and lease.admit(1, 2)
    assert not lease.admit(1, 3) and lease.overflowed  # both slots taken
    lease.drawing(1, 2)  # cost 2 where 1 was admitted
    assert (lease.free, lease.in_flight) == (0, 1)
    assert not lease.admit(1, 4)  # no credits left
    lease.dropped(1)
    assert (lease.free, lease.in_flight, lease.peak) == (1, 0, 2)
    assert wanted_slots(lease, 0, 10) == 4  # twice its peak: it ran out of slots
    assert wanted_slots(None, 0, 10) == 1


# --- the operations -------------------------------------------------------------------------


def test_a_lease_is_a_hold_and_its_draws_are_charges_with_the_requests_details(
    db: Database,
) -> None:
    key = funded(db, 1000)
    view = ledger.run(db, TakeLease(key, 40, 1, 3, START, owner="proc", max_open=5))
    assert (view.credits, view.slots) == (40, 3)
    assert available(db, key.team_id) == 1000 - 40  # debited when taken
    details = Details("scrape", "v2", "scrape-1", "https://e.com")
    assert ledger.run(db, Draw(view.id, key.team_id, 3, START + 1, details)) == 0
    held = reservations.get(db, view.id, START + 2)
    assert (held.settled, held.holding, held.status) == (3, 37, "open")
    assert available(db, key.team_id) == 1000 - 40  # the draw spent what the lease held
    rows = account.history(db, teams.get_team(db, key.team_id), True, START + 10)
    assert [(r.key_name, r.credits) for r in rows] == [("key-1", 3)]
    reservations.release(db, view.id, START + 3)
    assert available(db, key.team_id) == 1000 - 3


def test_a_team_near_empty_gets_no_lease(db: Database) -> None:
    key = funded(db, 7)
    assert ledger.run(db, TakeLease(key, 40, 2, 1, START, owner="p", max_open=5)) is None
    assert available(db, key.team_id) == 7  # nothing held


def test_a_lease_counts_against_the_keys_cap(db: Database) -> None:
    key = funded(db, 1000, cap=20)
    view = ledger.run(db, TakeLease(key, 400, 1, 1, START, owner="p", max_open=5))
    assert view.credits == 20 // HEADROOM
    verdict = reservations.check(db, key.id, 16, START)
    assert not verdict.allowed and verdict.limited_by == "key cap"


def test_a_leases_slots_count_in_the_plans_concurrency(db: Database) -> None:
    key = funded(db, 1000, concurrency=4)
    first = ledger.run(db, TakeLease(key, 10, 1, 3, START, owner="p", max_open=4))
    second = ledger.run(db, TakeLease(key, 10, 1, 3, START, owner="q", max_open=4))
    assert (first.slots, second.slots) == (3, 1)
    with pytest.raises(ConcurrencyLimited):
        ledger.run(db, TakeLease(key, 10, 1, 1, START, owner="r", max_open=4))


def test_a_draw_on_a_released_lease_is_still_charged(db: Database) -> None:
    key = funded(db, 100)
    view = ledger.run(db, TakeLease(key, 20, 1, 1, START, owner="gone", max_open=5))
    reservations.release(db, view.id, START + 1)  # e.g. its process taken for dead
    ledger.run(db, Draw(view.id, key.team_id, 2, START + 2, Details("scrape")))
    assert available(db, key.team_id) == 98
    assert reservations.get(db, view.id, START + 3).settled == 0  # not the closed hold's


# --- the manager ----------------------------------------------------------------------------


def test_the_manager_admits_many_requests_on_one_lease_and_gives_it_back(db: Database) -> None:
    key = funded(db, 1000)
    written: list[str] = []

    async def write(op: Operation[Any], team_id: str) -> Any:
        written.append(type(op).__name__)
        return await asyncio.to_thread(ledger.run, db, op)

    async def scenario() -> None:
        manager = LeaseManager(write, lambda: START, "proc")
        request = ReserveRequest(key=key.id, credits=1, endpoint="scrape", api_version="v2")
        for n in range(3):  # one after the other: one lease, a draw each
            ticket = await manager.admit(key.team_id, key, 5, request)
            assert ticket is not None and ticket.id.startswith("lease-")
            await manager.draw(ticket.id, 1, f"scrape-{n}")
        assert written == ["TakeLease", "Draw", "Draw", "Draw"]
        first = await manager.admit(key.team_id, key, 5, request)
        second = await manager.admit(key.team_id, key, 5, request)  # its one slot is taken
        assert first is not None and second is not None
        assert written[4:] == ["TakeLease"]  # a lease with two slots replaced it
        assert manager.drop(first.id) and manager.drop(second.id)  # not charged
        assert not manager.drop("a-hold-of-its-own")
        await manager.close()

    asyncio.run(scenario())
    assert written[5:] == ["Release", "Release"]  # both given back once drained
    assert available(db, key.team_id) == 997
    assert [(r.endpoint, r.status) for r in leases(db)] == [(LEASE, "released")] * 2


def leases(db: Database) -> list[Any]:
    with db.read() as conn:
        query = select(table.c.endpoint, table.c.status).where(table.c.endpoint == LEASE)
        return list(conn.execute(query))
