"""Promise 3: kill -9 the server during sustained ingestion; nothing acknowledged is lost.

A client thread sends batches of charges, each event with its own idempotency key, and records
which batches were acknowledged. The server is killed mid-stream and restarted; `check_ledger`
must then find every event of every acknowledged batch committed exactly once and nothing else
but events of the interrupted batches. The client retries everything not acknowledged, and
every event must then count exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Literal

import httpx
from sqlalchemy import func, select

from creditgate.domain.instants import now
from creditgate.services import account, teams
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
