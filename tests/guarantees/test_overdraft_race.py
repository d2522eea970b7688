"""Promise 1 under fire: hundreds of concurrent admissions over three server processes."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import httpx

from creditgate.domain.instants import now
from creditgate.services import account, teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.guarantees.conftest import funded_team
from tests.server import free_port, start, stop

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def fire(urls: list[str], keys: list[str], requests: int, concurrency: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(concurrency)
    servers = itertools.cycle(urls)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int, url: str) -> None:
            key = keys[i % len(keys)]
            path, body = (
                ("/admin/reservations", {"key": key, "credits": 3})
                if i % 2
                else ("/admin/charges", {"key": key, "credits": 3, "idempotencyKey": f"race-{i}"})
            )
            async with gate:
                response = await client.post(url + path, json=body, headers=ADMIN)
            statuses[response.status_code] += 1

        await asyncio.gather(*(one(i, next(servers)) for i in range(requests)))
    return statuses


def test_no_overdraft_under_concurrent_admission_across_three_processes(
    pg: Database, postgres_url: str, scale: int
) -> None:
    credits, requests = 300 * scale, 400 * scale
    team_id, keys = funded_team(pg, credits, key_count=4)
    servers = [start(postgres_url, ADMIN_TOKEN, free_port()) for _ in range(3)]
    try:
        statuses = asyncio.run(fire([s.url for s in servers], keys, requests, concurrency=64))
    finally:
        for server in servers:
            stop(server)
    assert statuses == {201: credits // 3, 402: requests - credits // 3}
    usage = account.credit_usage(pg, teams.get_team(pg, team_id), now())
    assert usage.remaining == 0  # charged or held, never below zero
