"""Every wait is bounded by creditgate itself (issue 19, items 1 and 3).

A private PostgreSQL cluster (initdb in a temporary directory, run as the `postgres` user when
the tests run as root) is frozen as an outside tester froze one: SIGSTOP of its postmaster and
every backend, so TCP stays open and nothing answers; no server-side timeout can fire. Each
request answers 503 in Firecrawl's envelope with Retry-After within CREDITGATE_DB_TIMEOUT_SECONDS
(+ a margin for a loaded machine); after the thaw, nothing acknowledged is lost or doubled.
A frozen Redis (SIGSTOP) leaves requests answered within the limiter's bound. A process never
opens more than CREDITGATE_DB_CONNECTIONS, and running out is a 503 at once.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from creditgate.app.serve import app_from_settings, prepare
from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import account, audit, plans, teams
from creditgate.settings import Settings
from creditgate.storage.database import POOL_WAIT_SECONDS, Database
from creditgate.storage.migrate import upgrade
from creditgate.web.limits import REDIS_TIMEOUT_SECONDS
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.helpers import bearer, team_with_key
from tests.redis_server import own_redis_server
from tests.server import app_in_thread, free_port

BOUND = 1.0  # CREDITGATE_DB_TIMEOUT_SECONDS of these tests: the deadline of a database call
MARGIN = 2.0  # seconds: a loaded machine's scheduling, never a measured number
CREDITS = 100_000  # the plan's credits a month
MAX_CONNECTIONS = 10  # the private cluster's max_connections (no superuser reserve)
DOWN = "The database is unavailable. Please retry shortly."
UNAVAILABLE = (503, {"success": False, "error": DOWN})


@dataclass
class Cluster:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def _pids(self) -> list[int]:
        """The postmaster, then its children (the backends and helpers)."""
        found = [self.process.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    found.append(int(stat.parent.name))
        return found

    def freeze(self) -> None:
        for pid in self._pids():  # the postmaster first: it forks no backend while stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binaries = _binaries()
    if binaries is None:
        if IN_CI:
            pytest.fail("PostgreSQL's initdb is not installed")
        pytest.skip("PostgreSQL's initdb is not installed")
    user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    home = Path(tempfile.mkdtemp(prefix="creditgate-pg-"))
    if user is not None:
        os.chown(home, pwd.getpwnam(user).pw_uid, -1)
    data, log = home / "data", home / "server.log"
    subprocess.run(
        [binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        user=user,
        check=True,
        capture_output=True,
    )
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "max_connections": str(MAX_CONNECTIONS),
        "superuser_reserved_connections": "0",
        "fsync": "off",
    }
    with log.open("wb") as written:
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(home)]
            + [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")],
            user=user,
            stdout=written,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = f"postgresql://postgres@127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=2) as c:
                c.execute("CREATE DATABASE creditgate")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise
            time.sleep(0.2)
    found = Cluster(f"{server}/creditgate", process, log)
    db = Database(found.url, connections=3)
    upgrade(db)
    db.dispose()
    try:
        yield found
    finally:
        found.thaw()
        process.send_signal(signal.SIGINT)  # a fast shutdown: clients are not waited for
        process.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, Database]]:
    """The app of `settings` served in a thread: its URL and its database, disposed after."""
    app = app_from_settings(settings)
    db: Database = app.state.ctx.db
    try:
        with app_in_thread(app) as url:
            yield url, db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def fake() -> FakeState:
    return FakeState()


@pytest.fixture(scope="module")
def upstream(fake: FakeState) -> Iterator[str]:
    with app_in_thread(make_app(fake)) as url:
        yield url


def _team(url: str, name: str) -> tuple[str, str]:
    """A team on a plan with room for every test's work: (its id, an fc- key)."""
    db = Database(url, connections=3)
    try:
        with contextlib.suppress(Exception):  # made by an earlier test of the module
            plans.create_plan(db, Plan("frozen", CREDITS, "month", 10, 100_000, 100_000), now())
        team, key, _ = team_with_key(db, now(), plan="frozen", name=name, allow_overage=True)
        return team.id, key
    finally:
        db.dispose()


def _settings(url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=url,
        admin_token=ADMIN_TOKEN,
        db_timeout_seconds=BOUND,
        sweep_seconds=0,
        follow_seconds=0,
        webhook_seconds=0,
        log_level="critical",
        **extra,
    )


def _unavailable(client: httpx.Client, method: str, path: str, **kwargs: Any) -> None:
    """`method path` answers 503 in the envelope with Retry-After within BOUND + MARGIN."""
    started = time.monotonic()
    answer = client.request(method, path, **kwargs)
    took = time.monotonic() - started
    assert took < BOUND + MARGIN, (path, took)
    assert (answer.status_code, answer.json()) == UNAVAILABLE, path
    assert answer.headers["retry-after"] == "1", path


def _charge(idem: str, key: str) -> dict[str, Any]:
    return {"key": key, "credits": 1, "idempotencyKey": idem}


def test_a_frozen_postgresql_answers_503_within_the_bound_and_loses_nothing_acknowledged(
    cluster: Cluster, upstream: str
) -> None:
    team_id, key = _team(cluster.url, "frozen-pg")
    settings = _settings(cluster.url, upstream_url=upstream, db_connections=3)
    admin = bearer(ADMIN_TOKEN)
    with (
        serving(settings) as (url, _),
        httpx.Client(base_url=url, timeout=BOUND + MARGIN + 30) as client,
    ):
        acknowledged = []
        for n in range(5):
            answer = client.post("/admin/charges", headers=admin, json=_charge(f"before-{n}", key))
            assert answer.status_code == 201, answer.text
            acknowledged.append(answer.json()["data"])
        scraped = client.post("/v1/scrape", headers=bearer(key), json={"url": "https://a.test"})
        assert scraped.status_code == 200, scraped.text
        cluster.freeze()
        try:
            # (a) a charge, twice: a connection is taken by the first, stuck until the thaw
            _unavailable(
                client, "POST", "/admin/charges", headers=admin, json=_charge("during", key)
            )
            _unavailable(
                client, "POST", "/admin/charges", headers=admin, json=_charge("during", key)
            )
            # (b) a gateway scrape, (c) the account API, admin reads, (d) the metrics
            body = {"url": "https://b.test"}
            _unavailable(client, "POST", "/v1/scrape", headers=bearer(key), json=body)
            _unavailable(client, "GET", "/v2/team/credit-usage", headers=bearer(key))
            _unavailable(client, "GET", "/admin/teams", headers=admin)
            _unavailable(client, "GET", "/metrics")
        finally:
            cluster.thaw()
        retried = _until_answered(client, "/admin/charges", admin, _charge("during", key))
        assert retried.status_code in (200, 201), retried.text  # 200: it had landed meanwhile
        again = client.post("/admin/charges", headers=admin, json=_charge("during", key))
        assert again.status_code == 200  # a replay: the same charge, not a second one
        assert again.json()["data"] == retried.json()["data"]
        for n, first in enumerate(acknowledged):  # each acknowledged charge, still there once
            replay = client.post("/admin/charges", headers=admin, json=_charge(f"before-{n}", key))
            assert (replay.status_code, replay.json()["data"]) == (200, first)
    db = Database(cluster.url, connections=3)
    try:
        report = audit.verify(db)
        assert report.ok, [d.detail for d in report.differences]
        with db.read() as conn:
            keys = conn.execute(
                text("SELECT key FROM idempotency WHERE team_id = :t ORDER BY key"), {"t": team_id}
            ).scalars()
            assert list(keys) == [
                "before-0",
                "before-1",
                "before-2",
                "before-3",
                "before-4",
                "during",
            ]
    finally:
        db.dispose()


SLOW_UPSTREAM = 2.0  # seconds the fake Firecrawl takes to answer a `slow` scrape


def test_a_scrape_whose_settlement_meets_a_frozen_postgresql_is_cut_off_within_the_bound(
    cluster: Cluster, upstream: str, fake: FakeState
) -> None:
    """PostgreSQL freezes while the upstream works on a scrape (its hold written): the answer's
    status line is sent with its first bytes, its last bytes wait for the settlement, which
    meets the deadline: the client sees the connection cut short within the upstream's time +
    the bound, never a hang. The settlement had been sent, so it commits after the thaw: the
    work is charged once, as for an answer lost on the network."""
    team_id, key = _team(cluster.url, "mid-scrape")
    settings = _settings(cluster.url, upstream_url=upstream, db_connections=3)
    outcome: list[object] = []
    with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=60) as client:

        def scrape() -> None:
            try:
                answer = client.post(
                    "/v1/scrape", headers=bearer(key), json={"url": "https://slow.test"}
                )
                outcome.append(answer.status_code)
            except httpx.HTTPError as exc:
                outcome.append(type(exc))

        seen = len(fake.paths)
        started = time.monotonic()
        thread = threading.Thread(target=scrape)
        thread.start()
        while len(fake.paths) == seen and time.monotonic() - started < 10:
            time.sleep(0.01)  # until the upstream works on it: its hold is written
        cluster.freeze()
        try:
            thread.join(timeout=SLOW_UPSTREAM + BOUND + MARGIN + 30)
            took = time.monotonic() - started
        finally:
            cluster.thaw()
    assert took < SLOW_UPSTREAM + BOUND + MARGIN, took
    assert outcome in ([httpx.RemoteProtocolError], [503]), outcome
    db = Database(cluster.url, connections=3)
    try:
        deadline = time.monotonic() + 30
        while True:  # the settlement sent before the freeze commits once the server answers
            with db.read() as conn:
                holds = conn.execute(
                    text("SELECT status, settled FROM reservations WHERE team_id = :t"),
                    {"t": team_id},
                ).all()
            if [tuple(h) for h in holds] == [("settled", 1)] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [tuple(h) for h in holds] == [("settled", 1)]
        report = audit.verify(db)
        assert report.ok, [d.detail for d in report.differences]
    finally:
        db.dispose()


CLIENTS = 6


def test_charges_in_flight_when_postgresql_freezes_answer_within_the_bound_and_count_once(
    cluster: Cluster,
) -> None:
    """Six clients charge without pause, each with its own idempotency key, retrying a 503
    with the same key; PostgreSQL is frozen for 3 s under them. No answer takes longer than
    the bound; after the thaw each charge counts exactly once, whichever answer its client got
    (a 503 whose write committed later is a replay on the retry)."""
    team_id, key = _team(cluster.url, "in-flight")
    settings = _settings(cluster.url, db_connections=6)
    admin = bearer(ADMIN_TOKEN)
    slowest: list[float] = []
    unavailable: list[str] = []
    sent: list[str] = []
    failures: list[str] = []
    halt = threading.Event()

    def client_loop(url: str, n: int) -> None:
        with httpx.Client(base_url=url, timeout=BOUND + MARGIN + 30) as client:
            count = 0
            while not halt.is_set():
                idem = f"client-{n}-{count}"
                sent.append(idem)
                retry_until = time.monotonic() + 60
                while True:
                    started = time.monotonic()
                    answer = client.post("/admin/charges", headers=admin, json=_charge(idem, key))
                    slowest.append(time.monotonic() - started)
                    if answer.status_code in (200, 201):
                        break
                    if answer.status_code != 503 or answer.json() != UNAVAILABLE[1]:
                        failures.append(f"{answer.status_code} {answer.text}")
                        return
                    unavailable.append(idem)
                    if time.monotonic() > retry_until:
                        failures.append(f"{idem}: still 503 after a minute")
                        return
                    time.sleep(0.1)
                count += 1

    with serving(settings) as (url, _):
        threads = [threading.Thread(target=client_loop, args=(url, n)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        cluster.freeze()
        try:
            time.sleep(3.0)
        finally:
            cluster.thaw()
        time.sleep(1.0)
        halt.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures[:5]
    assert unavailable, "the freeze was met by no charge"
    assert max(slowest) < BOUND + MARGIN, max(slowest)
    db = Database(cluster.url, connections=3)
    try:
        report = audit.verify(db)
        assert report.ok, [d.detail for d in report.differences]
        with db.read() as conn:
            keys = conn.execute(
                text("SELECT key FROM idempotency WHERE team_id = :t"), {"t": team_id}
            ).scalars()
            assert sorted(keys) == sorted(sent)  # every charge sent, each once
        remaining = account.credit_usage(db, teams.get_team(db, team_id), now()).remaining
        assert remaining == CREDITS - len(sent)  # one credit each, none doubled
    finally:
        db.dispose()


def _until_answered(
    client: httpx.Client, path: str, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    """The answer once the database answers again (a 503 while the stuck calls finish)."""
    deadline = time.monotonic() + 30
    while True:
        answer = client.post(path, headers=headers, json=body)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_a_process_opens_no_more_than_its_budget_and_running_out_is_a_503_at_once(
    cluster: Cluster,
) -> None:
    """Two processes of budget 5 on a server of max_connections 10: a flood gets answers (a
    200 or a quick 503), never PostgreSQL's 'too many clients'; with every connection of a
    process in use, a request is a 503 within the pool wait."""
    _, key = _team(cluster.url, "budget")
    settings = _settings(cluster.url, db_connections=MAX_CONNECTIONS // 2)
    statuses: list[int] = []
    with serving(settings) as (one, db), serving(settings) as (two, _):

        def flood(base: str) -> None:
            with httpx.Client(base_url=base, timeout=BOUND + MARGIN + 30) as client:
                for n in range(15):
                    path = "/admin/teams" if n % 2 else "/v2/team/credit-usage"
                    token = ADMIN_TOKEN if n % 2 else key
                    answer = client.get(path, headers=bearer(token))
                    statuses.append(answer.status_code)
                    if answer.status_code == 503:
                        assert answer.json() == {"success": False, "error": DOWN}

        threads = [threading.Thread(target=flood, args=(b,)) for b in (one, two) * 8]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert set(statuses) <= {200, 503} and statuses.count(200) > 0, statuses
        assert "too many clients" not in cluster.log.read_text(errors="replace")
        # Every connection of the first process taken: its next request waits the pool wait.
        assert db.budget is not None and sum(p.size() for p in db.pools().values()) == 5
        held = [
            engine.raw_connection()
            for engine, size in ((db.engine, db.budget.main), (db.reads, db.budget.reads))
            for _ in range(size)
        ]
        held += [db.writes.raw_connection() for _ in range(db.budget.writes)]
        try:
            with httpx.Client(base_url=one, timeout=30) as client:
                for path, token in (("/v2/team/credit-usage", key), ("/admin/teams", ADMIN_TOKEN)):
                    started = time.monotonic()
                    answer = client.get(path, headers=bearer(token))
                    assert time.monotonic() - started < min(BOUND, POOL_WAIT_SECONDS) + MARGIN
                    assert (answer.status_code, answer.json()) == UNAVAILABLE, path
                    assert answer.headers["retry-after"] == "1"
        finally:
            for conn in held:
                conn.close()
        with httpx.Client(base_url=one, timeout=30) as client:
            assert client.get("/admin/teams", headers=bearer(ADMIN_TOKEN)).status_code == 200


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with own_redis_server() as server:
        yield server


# The longest a request may wait on a frozen Redis: its first call that finds Redis silent (a
# queue entry: four socket operations of REDIS_TIMEOUT_SECONDS); later calls skip Redis.
REDIS_BOUND = 4 * REDIS_TIMEOUT_SECONDS


def test_a_frozen_redis_holds_no_request_past_the_limiters_bound(
    cluster: Cluster, upstream: str, own_redis: tuple[subprocess.Popen[bytes], str]
) -> None:
    redis, redis_url = own_redis
    _, key = _team(cluster.url, "frozen-redis")
    settings = _settings(cluster.url, upstream_url=upstream, redis_url=redis_url)
    with serving(settings) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
        redis.send_signal(signal.SIGSTOP)
        try:
            for n in range(3):
                for method, path, body in (
                    ("POST", "/v1/scrape", {"url": f"https://redis{n}.test"}),
                    ("GET", "/v2/team/credit-usage", None),
                ):
                    started = time.monotonic()
                    answer = client.request(method, path, headers=bearer(key), json=body)
                    assert time.monotonic() - started < REDIS_BOUND + MARGIN, path
                    assert answer.status_code == 200, answer.text
        finally:
            redis.send_signal(signal.SIGCONT)


def test_serve_warns_when_its_workers_may_open_more_connections_than_the_server_lets_in(
    cluster: Cluster,
) -> None:
    """`creditgate serve` checks, before its workers start, this host's share of the total
    (workers x CREDITGATE_DB_CONNECTIONS) against the server's max_connections."""
    fits = prepare(Settings(database_url=cluster.url, workers=2, db_connections=5))
    assert fits is None  # 10 of 10
    warning = prepare(Settings(database_url=cluster.url, workers=3, db_connections=4))
    assert warning is not None
    assert "3 worker(s) x CREDITGATE_DB_CONNECTIONS 4 = 12 connections" in warning
    assert f"more than the {MAX_CONNECTIONS} the PostgreSQL server lets in" in warning
