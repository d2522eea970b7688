"""Several processes, one address: three gateways behind haproxy, one killed mid-load.

The deployment of docs/deploy.md, for real: three `creditgate serve` processes in gateway mode
(the fake Firecrawl upstream, one PostgreSQL database, rate limits shared in a Redis database of
this test's own) behind Debian's haproxy (tests/haproxy.py: round robin, health check on
/health/ready, only failed connections retried). Client threads send, through haproxy alone,
admin charges (`POST /admin/charges`, each with its own idempotency key) and gateway scrapes
(`POST /v2/scrape` with a team key, half of them held half a second by the upstream). While one
process holds open reservations of requests in flight, it is killed with SIGKILL. Clients retry
every failed or unanswered request (a charge with its same idempotency key) until it succeeds.

Then (promises 2 and 3 of the ledger, across processes):
- every charge is committed exactly once: one movement per idempotency key, for its credits,
  and the team's total is the sum the clients sent (nothing acknowledged lost, none doubled);
- each scrape answered 200 is charged; a scrape is charged at most once per attempt;
- the holds the dead process owned are released by the survivors (their orphan sweep: the
  dead pid no longer runs on this host), with no restart of the dead one;
- `creditgate verify` is clean.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import keys, ledger, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.tables import entries, processes, reservations
from tests.conftest import ADMIN_TOKEN, IN_CI, reachable_redis
from tests.gateway.conftest import Fake
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.guarantees.test_crash import Charge, check_ledger
from tests.haproxy import haproxy, haproxy_binary
from tests.redis_server import own_redis_server
from tests.server import Server, app_in_thread, free_port, start, stop

# A Redis database of this test's own (the suite's other Redis tests use 0): the limiter's keys
# are named by team id, so sharing would be harmless, but a flush here then touches nobody.
REDIS_URL = os.environ.get("CREDITGATE_TEST_DEPLOY_REDIS_URL", "redis://127.0.0.1:6379/7")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROCESSES = 3
CHARGE_CLIENTS = 4
SCRAPE_CLIENTS = 4
FUNDS = 10**9
BEFORE_KILL = 1.0  # seconds of load before the kill (then: once the victim holds open holds)
AFTER_KILL = 3.0  # seconds of load after it
RETRY_FOR = 30.0  # a request still failing after this long is a failure of the test
RELEASE_WITHIN = 10.0  # the survivors' sweep runs every 0.3 s: the dead one's holds go fast


@pytest.fixture
def deploy_redis() -> str:
    return reachable_redis(REDIS_URL, flush=True)


@pytest.fixture
def upstream() -> Iterator[Fake]:
    state = FakeState()
    with app_in_thread(make_app(state)) as url:
        state.base_url = url
        yield Fake(url, state)


@pytest.fixture
def proxy_binary() -> str:
    binary = haproxy_binary()
    if binary is None:
        if IN_CI:
            pytest.fail("haproxy is not installed (scripts/setup --dev installs it)")
        pytest.skip("haproxy is not installed (scripts/setup --dev installs it)")
    return binary


@dataclass
class Load:
    """What the clients sent and were told."""

    charges: list[Charge] = field(default_factory=list)
    charge_retries: int = 0  # charge attempts that failed (502/503/504 or no answer)
    scrapes_ok: int = 0  # scrapes answered 200
    scrape_failures: int = 0  # scrape attempts that failed (each may have been charged)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __str__(self) -> str:
        return (
            f"{len(self.charges)} charges ({self.charge_retries} failed attempts retried), "
            f"{self.scrapes_ok} scrapes ({self.scrape_failures} failed attempts retried)"
        )


RETRYABLE = (502, 503, 504)  # haproxy's: the server died mid-request, none is up, it timed out


def charge_client(
    url: str, index: int, team_id: str, key: str, load: Load, halt: threading.Event
) -> None:
    rng = random.Random(f"charges-{index}")
    try:
        with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as http:
            n = 0
            while not halt.is_set():
                charge = Charge(f"deploy-c{index}-{n}", team_id, rng.randint(1, 9))
                n += 1
                with load.lock:
                    load.charges.append(charge)
                body = {
                    "key": key,
                    "credits": charge.credits,
                    "idempotencyKey": charge.key,
                    "jobId": charge.key,
                    "endpoint": "scrape",
                }
                deadline = time.monotonic() + RETRY_FOR
                while True:  # the same idempotency key until it is acknowledged
                    try:
                        response = http.post("/admin/charges", json=body)
                        status = response.status_code
                    except httpx.TransportError:
                        status = 0
                    if status in (200, 201):
                        charge.answer = "acked"
                        break
                    if status not in (0, *RETRYABLE):
                        charge.answer, charge.why = "refused", f"{status} {response.text[:200]}"
                        raise AssertionError(f"charge {charge.key} refused: {charge.why}")
                    with load.lock:
                        load.charge_retries += 1
                    assert time.monotonic() < deadline, f"charge {charge.key} never acknowledged"
                    time.sleep(0.05)
    except Exception as exc:  # reported by the test, never swallowed
        load.errors.append(f"charge client {index}: {exc!r}")


def scrape_client(url: str, index: int, key: str, load: Load, halt: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
            n = 0
            while not halt.is_set():
                # Every other one waits half a second upstream: requests in flight, holds open.
                target = f"https://e.com/{'wait' if n % 2 else 'page'}-{index}-{n}"
                n += 1
                deadline = time.monotonic() + RETRY_FOR
                while True:
                    try:
                        response = http.post("/v2/scrape", json={"url": target})
                        status = response.status_code
                    except httpx.TransportError:
                        status = 0
                    if status == 200:
                        with load.lock:
                            load.scrapes_ok += 1
                        break
                    if status not in (0, *RETRYABLE):
                        raise AssertionError(f"scrape answered {status}: {response.text[:200]}")
                    with load.lock:
                        load.scrape_failures += 1
                    assert time.monotonic() < deadline, f"scrape {target} never answered"
                    time.sleep(0.05)
    except Exception as exc:
        load.errors.append(f"scrape client {index}: {exc!r}")


def _team(db: Database, name: str) -> tuple[str, str]:
    at = now()
    team = teams.create_team(db, name, at, plan_id="deploy")
    ledger.grant(db, ledger.GrantRequest(team.id, FUNDS), at)
    return team.id, keys.create_key(db, team.id, at, name="k").secret


def _process_id(db: Database, pid: int) -> str:
    """The id a gateway process registered itself under (its holds' `owner`)."""
    deadline = time.monotonic() + 10
    while True:
        with db.read() as conn:
            found = conn.execute(select(processes.c.id).where(processes.c.pid == pid)).scalar()
        if found is not None:
            return str(found)
        assert time.monotonic() < deadline, f"process {pid} never registered"
        time.sleep(0.05)


def _open_holds(db: Database, owner: str) -> list[str]:
    with db.read() as conn:
        rows = conn.execute(
            select(reservations.c.id).where(
                reservations.c.owner == owner, reservations.c.status == "open"
            )
        ).scalars()
        return [str(r) for r in rows]


def test_three_gateways_behind_haproxy_survive_a_kill_9_mid_load(
    pg: Database, postgres_url: str, upstream: Fake, deploy_redis: str, proxy_binary: str
) -> None:
    plans.create_plan(pg, Plan("deploy", 0, "month", 1000, 100_000, 100_000), now())
    charged_team, charge_key = _team(pg, "deploy-charges")
    scraping_team, scrape_key = _team(pg, "deploy-scrapes")
    env = {
        "CREDITGATE_UPSTREAM_URL": upstream.url,
        "CREDITGATE_REDIS_URL": deploy_redis,
        "CREDITGATE_SWEEP_SECONDS": "0.3",
        "CREDITGATE_TRUSTED_PROXIES": "127.0.0.1",
        "CREDITGATE_LOG_LEVEL": "warning",
    }
    servers: list[Server] = []
    load = Load()
    halt = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for _ in range(PROCESSES):
            servers.append(start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env))
        owners = [_process_id(pg, s.process.pid) for s in servers]
        victim, victim_owner = servers[1], owners[1]
        with haproxy([s.url.removeprefix("http://") for s in servers]) as url:
            threads = [
                threading.Thread(
                    target=charge_client, args=(url, i, charged_team, charge_key, load, halt)
                )
                for i in range(CHARGE_CLIENTS)
            ] + [
                threading.Thread(target=scrape_client, args=(url, i, scrape_key, load, halt))
                for i in range(SCRAPE_CLIENTS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(BEFORE_KILL)
            deadline = time.monotonic() + 10
            while not _open_holds(pg, victim_owner):  # kill it with requests in its hands
                assert time.monotonic() < deadline, "the victim never held a reservation"
                time.sleep(0.01)
            os.kill(victim.process.pid, signal.SIGKILL)
            assert victim.process.wait() == -signal.SIGKILL  # reaped: its pid runs no more
            orphaned = _open_holds(pg, victim_owner)
            before = (len(load.charges), load.scrapes_ok)
            time.sleep(AFTER_KILL)
            during = (len(load.charges) - before[0], load.scrapes_ok - before[1])
            halt.set()
            for thread in threads:
                thread.join(timeout=RETRY_FOR + 15)
            # The survivors release what the dead one held: no restart, no client of theirs.
            deadline = time.monotonic() + RELEASE_WITHIN
            while left := _open_holds(pg, victim_owner):
                assert time.monotonic() < deadline, f"holds of the dead process still open: {left}"
                time.sleep(0.05)
    finally:
        halt.set()
        for thread in threads:
            thread.join(timeout=5)
        for server in servers:
            if server.process.poll() is None:
                stop(server)

    context = f"{load}; {len(orphaned)} holds orphaned; after the kill {during} served"
    assert not load.errors, (context, load.errors[:5])
    assert all(c.answer == "acked" for c in load.charges), context
    assert load.charge_retries + load.scrape_failures > 0, (context, "the kill failed nothing")
    assert during[0] > 0 and during[1] > 0, (context, "the survivors served nothing")
    assert orphaned, context

    # Promise 2 and 3: every charge exactly once, for its credits; the total is what was sent.
    check = check_ledger(pg, load.charges, {charged_team: FUNDS})
    assert check.problems == [], context
    assert check.committed_credits == sum(c.credits for c in load.charges), context

    # Scrapes: each one answered 200 is charged; an attempt that failed may have been charged
    # (committed, then killed before the answer left), never more than once.
    with pg.read() as conn:
        movements = conn.execute(
            select(
                func.count(func.distinct(entries.c.movement_id)), func.sum(entries.c.amount)
            ).where(entries.c.team_id == scraping_team, entries.c.kind == "charge")
        ).one()
        still_open = conn.execute(
            select(func.count()).where(reservations.c.status == "open")
        ).scalar()
        released = conn.execute(
            select(func.count()).where(
                reservations.c.id.in_(orphaned), reservations.c.status == "released"
            )
        ).scalar()
    charged_scrapes, credits = int(movements[0]), -int(movements[1] or 0)
    assert load.scrapes_ok <= charged_scrapes <= load.scrapes_ok + load.scrape_failures, context
    assert credits == charged_scrapes, context  # one credit a page
    assert still_open == 0, context
    assert released == len(orphaned), context
    # `creditgate verify` is clean: the `pg` fixture checks it after the test, and here too.
    from creditgate.services import audit

    report = audit.verify(pg)
    assert report.ok, [d.detail for d in report.differences]
    print(context)


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with own_redis_server() as server:
        yield server


REDIS_DOWN = 8.0  # seconds: haproxy marks a server down after 2 failed checks 2 s apart


def test_a_frozen_redis_takes_no_gateway_out_of_rotation(
    pg: Database,
    postgres_url: str,
    upstream: Fake,
    own_redis: tuple[subprocess.Popen[bytes], str],
    proxy_binary: str,
) -> None:
    """Found by an outside tester (issue 19): Redis stopped 12 s marked all three gateways down
    (their readiness included Redis) and haproxy refused 769 scrapes with its 503. Now Redis is
    `degraded`, not a failure: every scrape through haproxy is served while it is frozen."""
    redis_server, redis_url = own_redis
    plans.create_plan(pg, Plan("deploy", 0, "month", 1000, 100_000, 100_000), now())
    _, scrape_key = _team(pg, "redis-stop")
    env = {
        "CREDITGATE_UPSTREAM_URL": upstream.url,
        "CREDITGATE_REDIS_URL": redis_url,
        "CREDITGATE_LOG_LEVEL": "warning",
    }
    servers: list[Server] = []
    load = Load()
    halt = threading.Event()
    threads: list[threading.Thread] = []
    try:
        servers = [start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env) for _ in range(3)]
        with haproxy([s.url.removeprefix("http://") for s in servers]) as url:
            threads = [
                threading.Thread(target=scrape_client, args=(url, i, scrape_key, load, halt))
                for i in range(SCRAPE_CLIENTS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            redis_server.send_signal(signal.SIGSTOP)
            before = load.scrapes_ok
            time.sleep(REDIS_DOWN)
            served_while_down = load.scrapes_ok - before
            ready = [httpx.get(f"{s.url}/health/ready", timeout=10).json() for s in servers]
            redis_server.send_signal(signal.SIGCONT)
            time.sleep(1.0)
            halt.set()
            for thread in threads:
                thread.join(timeout=RETRY_FOR + 15)
    finally:
        halt.set()
        redis_server.send_signal(signal.SIGCONT)
        for thread in threads:
            thread.join(timeout=5)
        for server in servers:
            stop(server)
    assert not load.errors, (str(load), load.errors[:5])
    assert load.scrape_failures == 0, str(load)  # not one 502/503/504 from haproxy
    assert served_while_down > 0, str(load)
    assert ready == [{"success": True, "degraded": ["redis"]}] * 3
