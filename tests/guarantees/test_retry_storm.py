"""Promise 2 under faults: clients time out and retry while the server is slow or failing.

The server runs in-process behind injected faults: some writes fail just before commit (500),
some answers are dropped after commit (the connection closes mid-response), some are slower
than the client's timeout. Clients retry every event with the same idempotency key until it is
acknowledged. Each event must count exactly once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from sqlalchemy import Connection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.app.asgi import create_app
from creditgate.domain.instants import now
from creditgate.services import account, teams
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN
from tests.guarantees.conftest import funded_team
from tests.server import free_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT_TIMEOUT = 0.5


class InjectedFault(RuntimeError):
    pass


class FaultyDatabase(Database):
    """Fails a share of write transactions after their work, just before commit."""

    fail_rate = 0.0
    rng = random.Random(7)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with super().write() as conn:
            yield conn
            if self.rng.random() < self.fail_rate:
                raise InjectedFault("write failed before commit")


class Faults:
    """Drops some responses after the app committed, delays others past the client timeout."""

    def __init__(self, app: ASGIApp, drop_rate: float, slow_rate: float) -> None:
        self.app, self.drop_rate, self.slow_rate = app, drop_rate, slow_rate
        self.rng = random.Random(11)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        roll = self.rng.random()

        async def faulty_send(message: Message) -> None:
            if message["type"] == "http.response.start" and roll < self.drop_rate:
                await send(message)
                raise ConnectionAbortedError("injected: dropped after commit")
            if message["type"] == "http.response.start" and roll > 1 - self.slow_rate:
                await asyncio.sleep(CLIENT_TIMEOUT * 2)
            await send(message)

        await self.app(scope, receive, faulty_send)


@contextmanager
def faulty_server(url: str) -> Iterator[tuple[str, FaultyDatabase]]:
    db = FaultyDatabase(url)
    app = Faults(
        create_app(AppContext(db=db, admin_token=ADMIN_TOKEN, sweep_seconds=0)),
        drop_rate=0.15,
        slow_rate=0.1,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


async def deliver(url: str, events: list[dict[str, object]]) -> dict[str, int]:
    attempts = {"sent": 0, "failed": 0}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:

        async def one(event: dict[str, object]) -> None:
            async with gate:
                while True:
                    attempts["sent"] += 1
                    try:
                        response = await client.post(
                            f"{url}/admin/charges", json=event, headers=ADMIN
                        )
                        if response.status_code in (200, 201):
                            return
                        assert response.status_code == 500, response.text
                    except httpx.TransportError:
                        pass
                    attempts["failed"] += 1

        await asyncio.gather(*(one(e) for e in events))
    return attempts


def test_exactly_once_under_a_retry_storm_with_faults(
    pg: Database, postgres_url: str, scale: int
) -> None:
    team_id, (key,) = funded_team(pg, 10**9)
    events: list[dict[str, object]] = [
        {"key": key, "credits": 1 + i % 5, "idempotencyKey": f"storm-{i}", "endpoint": "scrape"}
        for i in range(200 * scale)
    ]
    with faulty_server(postgres_url) as (url, db):
        db.fail_rate = 0.15
        attempts = asyncio.run(deliver(url, events))
    assert attempts["failed"] > len(events) // 10  # the storm really happened
    usage = account.history(pg, teams.get_team(pg, team_id), False, now())
    assert sum(r.credits for r in usage) == sum(int(e["credits"]) for e in events)  # type: ignore[call-overload]
    from sqlalchemy import text

    with pg.read() as conn:
        charges = conn.execute(
            text("SELECT count(DISTINCT movement_id) FROM entries WHERE kind = 'charge'")
        ).scalar_one()
    assert charges == len(events)
