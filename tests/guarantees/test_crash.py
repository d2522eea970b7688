"""Promise 3: kill -9 the server while charges are in flight; nothing acknowledged is lost.

The main scenario runs on both databases (SQLite in WAL with the default synchronous=NORMAL,
and PostgreSQL): a real `creditgate serve` process, client threads sending single charges
(`POST /admin/charges`) and batches spanning two teams (`POST /admin/charges/batch`), each
charge with its own idempotency key. At a seeded moment, right after some client received a
2xx while the other clients' requests are in flight, the server is killed with SIGKILL and
restarted. Then `check_ledger` must find:

(a) every charge whose 2xx the client received committed exactly once;
(b) nothing else: committed charges = acknowledged + some of the unanswered ones, none twice,
    none refused, each for its own credits, and each team's balance = its funds - those charges;
(c) after every unanswered request is retried with the same idempotency keys, every charge
    committed exactly once (total = sum of all requests);
(d) `creditgate verify` clean.

`test_the_crash_check_detects_answers_sent_before_commit` runs the same scenario against a
server broken on purpose (ack_before_commit/sitecustomize.py: it answers 2xx, then commits a
moment later) and proves `check_ledger` reports the lost acknowledged charges: the main test
cannot pass because its check is blind.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from creditgate.cli.main import main
from creditgate.domain.errors import Conflict
from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import account, keys, ledger, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.tables import entries, idempotency
from tests.conftest import ADMIN_TOKEN
from tests.guarantees.conftest import funded_team
from tests.server import free_port, start, stop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH = 25

# --- the checker ----------------------------------------------------------------------------

Answer = Literal["acked", "refused", "unanswered"]


@dataclass
class Charge:
    """One charge a client asked for. Its idempotency key is also sent as its `jobId`, so each
    movement in `entries` names the request it came from: a charge written twice shows up as
    two movements (the idempotency table, one row per key, could not show it)."""

    key: str
    team_id: str
    credits: int
    answer: Answer = "unanswered"  # 2xx received / refused (non-2xx, or rejected in a batch)
    why: str = ""  # a refusal's status and error, for the failure message


@dataclass(frozen=True)
class CrashCheck:
    lost: list[str]  # acknowledged, not committed: promise 3 broken
    duplicated: list[str]  # committed more than once
    unexpected: list[str]  # committed though refused, or a charge no client asked for
    wrong_credits: list[str]  # committed for other credits than asked
    unindexed: list[str]  # committed without its idempotency key, or the key without it
    balances: dict[str, tuple[int, int]]  # team: (expected, actual), where they differ
    other_movements: dict[str, tuple[int, int]]  # team: (funds, non-charge entries), differing
    committed_credits: int  # the credits of every charge movement of these teams

    @property
    def problems(self) -> list[str]:
        named = {
            "lost acknowledged": self.lost,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "wrong credits": self.wrong_credits,
            "idempotency mismatch": self.unindexed,
        }
        out = [f"{what}: {sorted(ids)}" for what, ids in named.items() if ids]
        out += [f"balance of {t} (expected, actual): {v}" for t, v in self.balances.items()]
        out += [f"non-charge movements of {t}: {v}" for t, v in self.other_movements.items()]
        return out


def check_ledger(db: Database, charges: list[Charge], funds: dict[str, int]) -> CrashCheck:
    """Compare what the ledger holds for the teams of `funds` with what the clients were told.

    `funds` is each team's credits before the clients started (its only non-charge movement).
    A charge answered 2xx must be committed exactly once; one left unanswered may be committed
    (once) or not; nothing else may be.
    """
    team_ids = list(funds)
    asked = {c.key: c for c in charges}
    with db.read() as conn:
        rows = conn.execute(
            select(entries.c.job_id, entries.c.movement_id, func.sum(entries.c.amount))
            .where(entries.c.team_id.in_(team_ids), entries.c.kind == "charge")
            .group_by(entries.c.job_id, entries.c.movement_id)
        ).all()
        others = dict(
            conn.execute(
                select(entries.c.team_id, func.sum(entries.c.amount))
                .where(entries.c.team_id.in_(team_ids), entries.c.kind != "charge")
                .group_by(entries.c.team_id)
            ).all()
        )
        indexed = dict(
            conn.execute(
                select(idempotency.c.key, idempotency.c.movement_id).where(
                    idempotency.c.team_id.in_(team_ids)
                )
            ).all()
        )
    movements: dict[str, list[tuple[str, int]]] = {}
    for job_id, movement_id, amount in rows:
        movements.setdefault(str(job_id), []).append((movement_id, -int(amount)))
    committed = {key: found[0] for key, found in movements.items()}
    balances: dict[str, tuple[int, int]] = {}
    for team_id, credits in funds.items():
        spent = sum(c.credits for c in charges if c.team_id == team_id and c.key in committed)
        team = teams.get_team(db, team_id)
        actual = account.credit_usage(db, team, now()).remaining
        if actual != credits - spent:
            balances[team_id] = (credits - spent, actual)
    return CrashCheck(
        lost=[c.key for c in charges if c.answer == "acked" and c.key not in committed],
        duplicated=[key for key, found in movements.items() if len(found) > 1],
        unexpected=[key for key in committed if key not in asked or asked[key].answer == "refused"],
        wrong_credits=[
            key
            for key, (_, credits) in committed.items()
            if key in asked and asked[key].credits != credits
        ],
        unindexed=[
            key for key, (movement_id, _) in committed.items() if indexed.get(key) != movement_id
        ]
        + [key for key in indexed if key not in committed],
        balances=balances,
        other_movements={
            t: (credits, int(others.get(t, 0)))
            for t, credits in funds.items()
            if int(others.get(t, 0)) != credits
        },
        committed_credits=sum(credits for found in movements.values() for _, credits in found),
    )


# --- the scenario ---------------------------------------------------------------------------

FUNDS = 10**9
SINGLE_CLIENTS = 4  # threads sending POST /admin/charges, one charge a request
BATCH_CLIENTS = 2  # threads sending POST /admin/charges/batch, charges of both teams
BATCH_EVENTS = 20
# The kill: a seeded pause in this range after the first 2xx, then right after the next 2xx
# (an answer just sent, and the other clients' requests somewhere between arrival and answer).
KILL_AFTER = (0.2, 1.0)
BREAK_DIR = Path(__file__).parent / "ack_before_commit"
COMMIT_DELAY_SECONDS = 0.5  # in the broken server: how long after its answer a write commits


@dataclass
class Request:
    path: str
    body: dict[str, object]
    charges: list[Charge]


@dataclass
class CrashRun:
    seed: str
    requests: list[Request]
    after_crash: CrashCheck  # restarted, nothing retried yet: (a) and (b)
    after_retry: CrashCheck  # every unanswered request retried: (c)
    verify: Result  # `creditgate verify` at the end: (d)
    told: dict[str, Answer]  # what the clients were told of each charge before the kill
    client_errors: list[str] = field(default_factory=list)

    @property
    def charges(self) -> list[Charge]:
        return [c for r in self.requests for c in r.charges]

    def count(self, answer: Answer) -> int:
        """Charges given that answer before the kill."""
        return sum(1 for a in self.told.values() if a == answer)

    def __str__(self) -> str:
        told = ", ".join(f"{self.count(a)} {a}" for a in ("acked", "unanswered", "refused"))
        why = sorted({c.why for c in self.charges if c.why})[:3]
        return f"seed {self.seed}: {len(self.requests)} requests, charges {told} at the kill" + (
            f"; refusals: {why}" if why else ""
        )


def _teams(db: Database, seed: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Two teams funded with FUNDS each, two keys each: ({team: funds}, [(team, key)])."""
    at = now()
    with contextlib.suppress(Conflict):  # an earlier round of the same test created it
        plans.create_plan(db, Plan("crash", 0, "month", 1000, 10_000, 10_000), at)
    funds: dict[str, int] = {}
    spenders: list[tuple[str, str]] = []
    for t in range(2):
        team = teams.create_team(db, f"crash-{seed}-{t}", at, plan_id="crash")
        ledger.grant(db, ledger.GrantRequest(team.id, FUNDS), at)
        funds[team.id] = FUNDS
        spenders += [
            (team.id, keys.create_key(db, team.id, at, name=f"k{k}").secret) for k in (0, 1)
        ]
    return funds, spenders


def _answer(request: Request, response: httpx.Response) -> None:
    """Record what the client was told about each charge of `request`."""
    if response.status_code not in (200, 201):
        for charge in request.charges:
            charge.answer = "refused"
            charge.why = f"{response.status_code} {response.text[:200]}"
    elif request.path.endswith("/batch"):
        outcomes = response.json()["data"]
        for charge, outcome in zip(request.charges, outcomes, strict=True):
            good = outcome["status"] in ("accepted", "duplicate")
            charge.answer = "acked" if good else "refused"
    else:
        request.charges[0].answer = "acked"


def _verify(database_url: str) -> Result:
    """`creditgate verify` (in this process: a second interpreter would cost a second)."""
    return CliRunner().invoke(main, ["verify", "--json", "--database-url", database_url])


def crash_run(
    db: Database, database_url: str, seed: str, *, ack_before_commit: bool = False
) -> CrashRun:
    """Sustained charges, kill -9 at a seeded moment, restart, check, retry, check, verify.

    With `ack_before_commit`, the first server is the broken one (see BREAK_DIR); the restarted
    server is always the real one.
    """
    funds, spenders = _teams(db, seed)
    rng = random.Random(seed)
    kill_after = rng.uniform(*KILL_AFTER)
    env: dict[str, str] = {}
    if ack_before_commit:
        path = os.environ.get("PYTHONPATH")
        env = {
            "PYTHONPATH": os.pathsep.join([str(BREAK_DIR), *([path] if path else [])]),
            "CREDITGATE_TEST_ACK_BEFORE_COMMIT": str(COMMIT_DELAY_SECONDS),
        }
    requests: list[Request] = []
    errors: list[str] = []
    lock = threading.Lock()
    acked = threading.Event()
    halt = threading.Event()

    def next_request(client: int, n: int, client_rng: random.Random) -> Request:
        count = 1 if client < SINGLE_CLIENTS else BATCH_EVENTS
        picks = [client_rng.choice(spenders) for _ in range(count)]
        charges = [
            Charge(f"{seed}-c{client}-r{n}-e{i}", team_id, client_rng.randint(1, 9))
            for i, (team_id, _) in enumerate(picks)
        ]
        events: list[dict[str, object]] = [
            {
                "key": key,
                "credits": c.credits,
                "idempotencyKey": c.key,
                "jobId": c.key,
                "endpoint": "scrape",
            }
            for c, (_, key) in zip(charges, picks, strict=True)
        ]
        if count == 1:
            return Request("/admin/charges", events[0], charges)
        return Request("/admin/charges/batch", {"events": events}, charges)

    def client(index: int, url: str) -> None:
        client_rng = random.Random(f"{seed}-client-{index}")
        try:
            with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as http:
                n = 0
                while not halt.is_set():
                    request = next_request(index, n, client_rng)
                    n += 1
                    with lock:
                        requests.append(request)
                    try:
                        response = http.post(request.path, json=request.body)
                    except httpx.TransportError:
                        return  # unanswered: the server is gone
                    _answer(request, response)
                    if all(c.answer == "acked" for c in request.charges):
                        acked.set()
        except Exception as exc:  # reported by the test, never swallowed
            errors.append(f"client {index}: {exc!r}")

    server = start(database_url, ADMIN_TOKEN, free_port(), extra_env=env)
    killed = False
    workers = [
        threading.Thread(target=client, args=(i, server.url))
        for i in range(SINGLE_CLIENTS + BATCH_CLIENTS)
    ]
    try:
        for worker in workers:
            worker.start()
        assert acked.wait(30), f"{seed}: no charge was acknowledged"
        time.sleep(kill_after)
        acked.clear()  # kill right after the next 2xx, the others' requests in flight
        assert acked.wait(30), f"{seed}: charges stopped being acknowledged"
        os.kill(server.process.pid, signal.SIGKILL)
        killed = server.process.wait() == -signal.SIGKILL
    finally:
        halt.set()
        if not killed:
            stop(server)
        for worker in workers:
            worker.join(timeout=60)
    charges = [c for r in requests for c in r.charges]
    told = {c.key: c.answer for c in charges}

    server = start(database_url, ADMIN_TOKEN, free_port())
    try:
        after_crash = check_ledger(db, charges, funds)
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
            for request in requests:
                if any(c.answer == "unanswered" for c in request.charges):
                    response = http.post(request.path, json=request.body)
                    assert response.status_code in (200, 201), (seed, response.text)
                    _answer(request, response)
        after_retry = check_ledger(db, charges, funds)
    finally:
        stop(server)
    return CrashRun(seed, requests, after_crash, after_retry, _verify(database_url), told, errors)


def test_nothing_acknowledged_is_lost_when_the_server_is_killed(
    db: Database, database_url: str, scale: int
) -> None:
    """(a)-(d) on SQLite (WAL, synchronous=NORMAL) and PostgreSQL; --big: five kill moments."""
    for round_ in range(scale):
        run = crash_run(db, database_url, f"{db.dialect}-{round_}")
        context = str(run)
        assert not run.client_errors, (context, run.client_errors)
        assert run.count("acked") > 0 and run.count("unanswered") > 0, context
        assert run.count("refused") == 0, context
        assert run.after_crash.problems == [], context  # (a) and (b)
        assert run.after_retry.problems == [], context  # (c): every charge exactly once
        assert run.after_retry.committed_credits == sum(c.credits for c in run.charges), context
        assert run.verify.exit_code == 0, (context, run.verify.output)  # (d)


def test_the_crash_check_detects_answers_sent_before_commit(
    db: Database, database_url: str
) -> None:
    """The same scenario and check against a server that answers 2xx before it commits: the
    check must name the acknowledged charges the kill lost, so it is not vacuous."""
    run = crash_run(db, database_url, f"{db.dialect}-broken", ack_before_commit=True)
    context = str(run)
    assert not run.client_errors, (context, run.client_errors)
    lost = set(run.after_crash.lost)
    assert lost, (context, "the check missed acknowledged charges lost by the kill")
    assert all(run.told[key] == "acked" for key in lost)
    assert run.after_crash.problems == [f"lost acknowledged: {sorted(lost)}"], context
    # Retrying what was unanswered cannot bring them back, and (c) says so too.
    assert set(run.after_retry.lost) == lost, context
    assert run.after_retry.committed_credits < sum(c.credits for c in run.charges)
    # The ledger itself stays consistent: only a check against what clients were told sees it.
    assert run.verify.exit_code == 0, (context, run.verify.output)


# --- the batch-ingestion scenario on PostgreSQL ---------------------------------------------


def send(url: str, batch: list[dict[str, object]]) -> bool:
    """True when the server acknowledged the whole batch as accepted or duplicate."""
    try:
        response = httpx.post(
            f"{url}/admin/charges/batch", json={"events": batch}, headers=ADMIN, timeout=10
        )
    except httpx.TransportError:
        return False
    if response.status_code != 200:
        return False
    return all(r["status"] in ("accepted", "duplicate") for r in response.json()["data"])


def test_nothing_acknowledged_is_lost_across_kill_9(
    pg: Database, postgres_url: str, scale: int
) -> None:
    """One client sends batches of one team; kill -9 mid-stream, restart, retry the rest."""
    team_id, (key,) = funded_team(pg, 10**9)
    batches = [
        [
            {
                "key": key,
                "credits": 1 + (b * BATCH + i) % 7,
                "idempotencyKey": f"e{b}-{i}",
                "jobId": f"e{b}-{i}",
                "endpoint": "scrape",
            }
            for i in range(BATCH)
        ]
        for b in range(40 * scale)
    ]
    port = free_port()
    server = start(postgres_url, ADMIN_TOKEN, port)
    acked: set[int] = set()
    failed: list[int] = []

    def client() -> None:
        for b, batch in enumerate(batches):
            (acked.add if send(server.url, batch) else failed.append)(b)

    worker = threading.Thread(target=client)
    worker.start()
    while len(acked) < 5 * scale:  # let ingestion run, then kill it mid-stream
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    worker.join()
    assert failed, "the kill should have interrupted some batches"
    charges = [
        Charge(f"e{b}-{i}", team_id, 1 + (b * BATCH + i) % 7)
        for b in range(len(batches))
        for i in range(BATCH)
    ]
    for b in acked:
        for charge in charges[b * BATCH : (b + 1) * BATCH]:
            charge.answer = "acked"

    server = start(postgres_url, ADMIN_TOKEN, port)
    try:
        # Before any retry: every event of every acknowledged batch is there once, and nothing
        # but events of the interrupted batches besides.
        assert check_ledger(pg, charges, {team_id: 10**9}).problems == []
        for b in failed:
            assert send(server.url, batches[b])
    finally:
        stop(server)

    expected = sum(int(e["credits"]) for batch in batches for e in batch)  # type: ignore[call-overload]
    usage = account.history(pg, teams.get_team(pg, team_id), False, now())
    assert sum(r.credits for r in usage) == expected  # every event exactly once
    for charge in charges:
        charge.answer = "acked"
    assert check_ledger(pg, charges, {team_id: 10**9}).problems == []
    from sqlalchemy import text

    with pg.read() as conn:
        stored = conn.execute(text("SELECT count(*) FROM idempotency")).scalar_one()
    assert stored == len(batches) * BATCH
