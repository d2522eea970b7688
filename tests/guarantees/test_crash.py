"""Promise 3: kill -9 the server during sustained ingestion; nothing acknowledged is lost.

A client thread sends batches of charges, each event with its own idempotency key, and records
which batches were acknowledged. The server is killed mid-stream, restarted, and the client
retries everything not acknowledged. Every event must then count exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from creditgate.domain.instants import now
from creditgate.services import account, teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.guarantees.conftest import funded_team
from tests.server import free_port, start, stop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH = 25


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
    team_id, (key,) = funded_team(pg, 10**9)
    batches = [
        [
            {
                "key": key,
                "credits": 1 + (b * BATCH + i) % 7,
                "idempotencyKey": f"e{b}-{i}",
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
    acked_before_crash = set(acked)

    server = start(postgres_url, ADMIN_TOKEN, port)
    try:
        for b in failed:
            assert send(server.url, batches[b])
    finally:
        stop(server)

    expected = sum(int(e["credits"]) for batch in batches for e in batch)  # type: ignore[call-overload]
    usage = account.history(pg, teams.get_team(pg, team_id), False, now())
    assert sum(r.credits for r in usage) == expected  # every event exactly once
    assert acked_before_crash <= set(range(len(batches)))
    from sqlalchemy import text

    with pg.read() as conn:
        stored = conn.execute(text("SELECT count(*) FROM idempotency")).scalar_one()
    assert stored == len(batches) * BATCH
