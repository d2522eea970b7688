"""Credit leases (services/leases.py) hold the ledger's promises, across gateway processes.

Two real `creditgate serve` processes with leases on, in front of one fake Firecrawl, on both
databases: racing scrapes never overdraw the team or a key's cap, every answer a client read
whole is charged exactly once (found by its scrape id) and nothing else is; a kill -9 in the
middle loses no charge a client was told of and leaves `verify` clean once the dead process's
lease is released; a team near empty spends its last credit; page slots stay within the plan's
concurrency across the processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select

from creditgate.domain.errors import Conflict
from creditgate.domain.instants import now
from creditgate.domain.leases import IDLE_MS, LEASE, MIN_REQUESTS
from creditgate.domain.plans import Plan
from creditgate.services import keys, ledger, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.tables import entries, reservations
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import Fake
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.server import Server, app_in_thread, free_port, start, stop


@pytest.fixture
def fake() -> Iterator[Fake]:
    state = FakeState()
    with app_in_thread(make_app(state)) as url:
        state.base_url = url
        yield Fake(url, state)


def gateways(db: Database, fake: Fake, count: int = 2) -> list[Server]:
    env = {
        "CREDITGATE_UPSTREAM_URL": fake.url,
        "CREDITGATE_LEASES": "true",
        "CREDITGATE_SWEEP_SECONDS": "0.5",
        "CREDITGATE_QUEUE_WAIT_SECONDS": "20",
    }
    return [start(db.url, ADMIN_TOKEN, free_port(), extra_env=env) for _ in range(count)]


def team(
    db: Database,
    credits: int,
    *,
    concurrency: int = 1000,
    cap: int | None = None,
    name: str = "leased",
) -> str:
    """A team whose only credits are `credits` (a pack); returns its key."""
    at = now()
    plan = f"leased-{concurrency}"
    with contextlib.suppress(Conflict):
        plans.create_plan(db, Plan(plan, 0, "month", concurrency, 100_000, 100_000), at)
    created = teams.create_team(db, name, at, plan_id=plan)  # names are unique
    if credits:
        ledger.grant(db, ledger.GrantRequest(created.id, credits), at)
    return keys.create_key(db, created.id, at, cap=cap).secret


@dataclass
class Load:
    told: list[str] = field(default_factory=list)  # scrape ids of answers read whole
    refused: list[int] = field(default_factory=list)  # 402s
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def scrape(url: str, key: str, load: Load, target: str = "https://e.com/page") -> int | None:
    """One scrape; what its answer says is noted. None: no answer (the process died)."""
    try:
        answer = httpx.post(
            f"{url}/v2/scrape",
            json={"url": target},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except httpx.HTTPError:
        return None
    with load.lock:
        if answer.status_code == 200:
            load.told.append(answer.json()["data"]["metadata"]["scrapeId"])
        elif answer.status_code == 402:
            load.refused.append(402)
        else:
            load.other.append(f"{answer.status_code} {answer.text[:200]}")
    return answer.status_code


def hammer(
    urls: list[str],
    key: str,
    load: Load,
    threads: int,
    until: float,
    stop: threading.Event | None = None,
) -> None:
    """`threads` clients over the processes, each scraping until refused, `until` or `stop`."""

    def client(n: int) -> None:
        url = urls[n % len(urls)]
        while time.monotonic() < until and not (stop and stop.is_set()):
            status = scrape(url, key, load)
            if status == 402 or status is None:
                return

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def charged(db: Database) -> dict[str, int]:
    """Scrape id -> how many charges name it."""
    query = (
        select(entries.c.job_id, func.count())
        .where(entries.c.kind == "charge", entries.c.line == 0, entries.c.job_id.is_not(None))
        .group_by(entries.c.job_id)
    )
    with db.read() as conn:
        return {job: int(n) for job, n in conn.execute(query)}


def spent(db: Database) -> int:
    query = select(func.coalesce(func.sum(-entries.c.amount), 0)).where(entries.c.kind == "charge")
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def open_leases(db: Database) -> int:
    query = select(func.count()).where(
        reservations.c.endpoint == LEASE, reservations.c.status == "open"
    )
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


def given_back(db: Database, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while open_leases(db):
        assert time.monotonic() < deadline, "the leases were never given back"
        time.sleep(0.1)


def test_racing_processes_never_overdraw_and_charge_every_answer_once(
    db: Database, fake: Fake
) -> None:
    key = team(db, 60)
    servers = gateways(db, fake)
    try:
        load = Load()
        hammer([s.url for s in servers], key, load, threads=8, until=time.monotonic() + 120)
        given_back(db)
    finally:
        for s in servers:
            stop(s)
    assert load.other == []
    recorded = charged(db)
    assert sorted(recorded) == sorted(load.told)  # every answer read whole, and nothing else
    assert set(recorded.values()) == {1}  # each exactly once
    assert spent(db) == len(load.told) <= 60  # never below zero
    # A 402 while credits remain only for what another process's lease still held: a lease
    # takes at most a quarter of what is left, so a few credits at the end.
    assert len(load.told) >= 60 - 2 * MIN_REQUESTS
    assert open_leases(db) == 0


def test_a_kill_9_loses_no_charge_a_client_was_told_of(db: Database, fake: Fake) -> None:
    key = team(db, 100_000)
    servers = gateways(db, fake)
    victim, survivor = servers
    load = Load()
    try:
        until, stopping = time.monotonic() + 60, threading.Event()
        clients = threading.Thread(
            target=hammer, args=([victim.url, survivor.url], key, load, 8, until, stopping)
        )
        clients.start()
        while len(load.told) < 40:  # mid-load
            assert clients.is_alive(), load.other
            time.sleep(0.01)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        time.sleep(1)  # the survivor goes on
        stopping.set()
        clients.join()
        given_back(db, 15)  # the dead process's lease: released by the survivor's sweep
    finally:
        stop(survivor)
    assert load.other == []
    recorded = charged(db)
    assert set(load.told) <= set(recorded)  # nothing a client was told of is lost
    assert set(recorded.values()) == {1}  # and nothing counts twice
    assert len(recorded) - len(load.told) <= 8  # at most the requests in flight at the kill
    assert spent(db) == len(recorded)
    # `verify` runs after the test (the db fixture): the released lease agrees with its draws.


def test_a_team_near_empty_spends_its_last_credit(db: Database, fake: Fake) -> None:
    """No credit stays stranded in a lease: one process alone is refused only at zero; two
    taking turns are refused only at zero once an idle lease was given back (IDLE_MS)."""
    alone_key, turns_key = team(db, 40, name="alone"), team(db, 40, name="turns")
    servers = gateways(db, fake)
    try:
        alone = Load()
        while scrape(servers[0].url, alone_key, alone) == 200:
            pass
        turns = Load()
        refused_by_both = 0
        while refused_by_both < 2:
            answers = [scrape(s.url, turns_key, turns) for s in servers]
            if 200 in answers:
                refused_by_both = 0
            else:
                refused_by_both += 1
                time.sleep(IDLE_MS / 1000 + 0.7)  # an idle lease is given back meanwhile
        given_back(db)
    finally:
        for s in servers:
            stop(s)
    assert (len(alone.told), alone.refused) == (40, [402])
    assert len(turns.told) == 40
    assert spent(db) == 80


def test_a_key_cap_holds_across_two_processes(db: Database, fake: Fake) -> None:
    key = team(db, 10_000, cap=60)
    servers = gateways(db, fake)
    try:
        load = Load()
        hammer([s.url for s in servers], key, load, threads=6, until=time.monotonic() + 120)
        given_back(db)
        more = Load()
        for _ in range(3):  # after the leases went back: the cap's rest, and no more
            for s in servers:
                scrape(s.url, key, more)
        given_back(db)
    finally:
        for s in servers:
            stop(s)
    assert load.other == more.other == []
    assert spent(db) == len(load.told) + len(more.told) <= 60
    assert len(load.told) + len(more.told) == 60  # the cap's every credit, once given back


def test_page_slots_stay_within_the_plan_across_processes(db: Database, fake: Fake) -> None:
    key = team(db, 10_000, concurrency=3)
    servers = gateways(db, fake)
    try:
        load = Load()
        workers = [
            threading.Thread(
                target=lambda n=n: [
                    scrape(servers[n % 2].url, key, load, "https://e.com/wait") for _ in range(3)
                ]
            )
            for n in range(8)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        given_back(db)
    finally:
        for s in servers:
            stop(s)
    assert load.other == [] and len(load.told) == 24
    assert fake.state.max_inflight == 3  # never more pages at once than the plan's 3
    assert sorted(charged(db)) == sorted(load.told)
