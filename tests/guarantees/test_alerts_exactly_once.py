"""Alerts fire exactly once under concurrency and retries: charges crossing 80% and 100% of a
team's credits from three server processes at once, each crossing delivered once to a real
receiver, signed (verified with the standardwebhooks library), and retrying every charge fires
nothing new."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from creditgate.domain.instants import now
from creditgate.services import keys, teams
from creditgate.storage.database import Database
from creditgate.storage.tables import alerts_fired, events
from tests.conftest import ADMIN_TOKEN
from tests.server import free_port, start, stop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHARGES, CREDITS = 120, 25  # 3,000 credits: the hobby plan's month, 80% then 100%


class Receiver:
    """A webhook receiver on a real port: what arrived, headers and body."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        lock, got = threading.Lock(), self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # and a little longer: a duplicate would arrive now


async def fire(urls: list[str], secrets: list[str]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    servers = itertools.cycle(urls)
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int, url: str) -> None:
            body = {"key": secrets[i % len(secrets)], "credits": CREDITS, "idempotencyKey": f"c{i}"}
            async with gate:
                answer = await client.post(f"{url}/admin/charges", json=body, headers=ADMIN)
            statuses[answer.status_code] += 1

        await asyncio.gather(*(one(i, next(servers)) for i in range(CHARGES)))
    return statuses


def test_crossings_from_three_processes_fire_one_webhook_each_and_retries_none(
    pg: Database, postgres_url: str
) -> None:
    at = now()
    team = teams.create_team(pg, "alerted", at, plan_id="hobby")
    secrets = [keys.create_key(pg, team.id, at, name=f"k{i}").secret for i in range(4)]
    receiver = Receiver()
    env = {"CREDITGATE_WEBHOOK_SECONDS": "0.2"}
    servers = [start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env) for _ in range(3)]
    try:
        made = httpx.post(
            f"{servers[0].url}/admin/webhooks",
            json={"url": receiver.url, "teamId": team.id},
            headers=ADMIN,
        ).json()["data"]
        urls = [s.url for s in servers]
        assert asyncio.run(fire(urls, secrets)) == {201: CHARGES}
        receiver.wait_for(2)
        assert asyncio.run(fire(urls, secrets)) == {200: CHARGES}  # every one a replay
        receiver.wait_for(3, seconds=2.0)
    finally:
        for server in servers:
            stop(server)
        receiver.server.shutdown()
        receiver.server.server_close()
    verified = [Webhook(made["secret"]).verify(body, headers) for headers, body in receiver.got]
    assert [(v["type"], v["data"]["ruleId"]) for v in verified] == [
        ("credits.threshold_crossed", "default-80"),
        ("credits.threshold_crossed", "default-100"),
    ]
    first, second = (v["data"] for v in verified)
    assert first["creditsUsed"] >= 2_400 and first["creditsUsed"] < 2_400 + CREDITS
    assert second["creditsUsed"] == 3_000 and second["remainingCredits"] == 0
    assert len({h["webhook-id"] for h, _ in receiver.got}) == 2
    with pg.read() as conn:
        count = select(func.count())
        assert conn.execute(count.select_from(events)).scalar() == 2
        assert conn.execute(count.select_from(alerts_fired)).scalar() == 2
    assert json.loads(receiver.got[0][1])["data"]["teamId"] == team.id
