"""Gateway processes: a restart in the middle of a crawl, and two processes sharing limits."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import account, plans, teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, reachable_redis
from tests.gateway.conftest import Fake, early_in_a_minute
from tests.helpers import bearer, team_with_key
from tests.server import free_port, start, stop

REDIS_URL = os.environ.get("CREDITGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def gateway_env(fake: Fake, **extra: str) -> dict[str, str]:
    return {
        "CREDITGATE_UPSTREAM_URL": fake.url,
        "CREDITGATE_FOLLOW_SECONDS": "0.2",
        "CREDITGATE_PAGE_GRACE_SECONDS": "0.5",
        **extra,
    }


def test_a_crawl_is_settled_exactly_once_across_a_gateway_restart(
    pg: Database, postgres_url: str, fake: Fake
) -> None:
    team, key, _ = team_with_key(pg, now())
    first = start(
        postgres_url,
        ADMIN_TOKEN,
        free_port(),
        extra_env=gateway_env(fake, CREDITGATE_FOLLOW_SECONDS="3600"),
    )
    started = httpx.post(
        f"{first.url}/v2/crawl", json={"url": "https://s.example", "limit": 4}, headers=bearer(key)
    ).json()
    job_id = started["id"]
    httpx.get(f"{first.url}/v2/crawl/{job_id}", headers=bearer(key))  # one page settled
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    assert account.credit_usage(pg, teams.get_team(pg, team.id), now()).remaining == 3000 - 4

    second = start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=gateway_env(fake))
    try:
        deadline = time.monotonic() + 15
        while account.queue_status(pg, teams.get_team(pg, team.id), now()).active:
            assert time.monotonic() < deadline, "the restarted gateway never finished the crawl"
            time.sleep(0.1)
        status = httpx.get(f"{second.url}/v2/crawl/{job_id}", headers=bearer(key)).json()
        assert (status["status"], status["creditsUsed"]) == ("completed", 4)
    finally:
        stop(second)
    rows = account.history(pg, teams.get_team(pg, team.id), True, now())
    assert [(r.key_name, r.credits) for r in rows] == [("default", 4)]
    assert account.credit_usage(pg, teams.get_team(pg, team.id), now()).remaining == 3000 - 4


@pytest.fixture
def redis_url() -> str:
    return reachable_redis(REDIS_URL)


def test_two_gateways_share_the_rate_limit_and_the_concurrency(
    pg: Database, postgres_url: str, fake: Fake, redis_url: str
) -> None:
    plans.create_plan(pg, Plan("duo", 1000, "month", 1, 3, 3), now())
    _, key, _ = team_with_key(pg, now(), plan="duo")
    env = gateway_env(fake, CREDITGATE_REDIS_URL=redis_url)
    gateways = [start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env) for _ in range(2)]
    try:
        early_in_a_minute()
        results: list[int] = []

        def wait_scrape(url: str) -> None:
            response = httpx.post(
                f"{url}/v2/scrape",
                json={"url": "https://e.com/wait"},
                headers=bearer(key),
                timeout=10,
            )
            results.append(response.status_code)

        threads = [threading.Thread(target=wait_scrape, args=(g.url,)) for g in gateways]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200, 200]
        assert fake.state.max_inflight == 1  # concurrency 1 held across both processes
        third = httpx.post(
            f"{gateways[0].url}/v2/scrape", json={"url": "https://e.com"}, headers=bearer(key)
        )
        fourth = httpx.post(
            f"{gateways[1].url}/v2/scrape", json={"url": "https://e.com"}, headers=bearer(key)
        )
        assert (third.status_code, fourth.status_code) == (200, 429)  # 3 per minute in all
    finally:
        for g in gateways:
            stop(g)


def test_two_gateways_share_the_teams_page_slots_and_its_queue(
    pg: Database, postgres_url: str, fake: Fake, redis_url: str
) -> None:
    """A crawl through one process takes the plan's 4 page slots; a scrape through the other
    waits for one, and either process's queue-status counts it as waiting (the queue is in
    Redis); upstream the team never has more than 4 pages in flight."""
    pool = fake.state.use_workers(100, page_seconds=1.0)
    plans.create_plan(pg, Plan("four", 1000, "month", 4, 100, 100), now())
    _, key, _ = team_with_key(pg, now(), plan="four")
    env = gateway_env(fake, CREDITGATE_REDIS_URL=redis_url)
    one, other = (start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env) for _ in range(2))
    try:
        crawl = httpx.post(
            f"{one.url}/v2/crawl",
            json={"url": "https://team.example", "limit": 4},
            headers=bearer(key),
            timeout=10,
        )
        assert crawl.status_code == 200, crawl.text
        scraped: list[int] = []

        def scrape() -> None:
            answer = httpx.post(
                f"{other.url}/v2/scrape",
                json={"url": "https://team.example/page"},
                headers=bearer(key),
                timeout=30,
            )
            scraped.append(answer.status_code)

        waiter = threading.Thread(target=scrape)
        waiter.start()
        seen: list[dict[str, int]] = []
        deadline = time.monotonic() + 10
        while not seen or seen[-1]["waitingJobsInQueue"] != 1:
            assert time.monotonic() < deadline, f"the scrape never showed as waiting: {seen}"
            seen.append(httpx.get(f"{one.url}/v2/team/queue-status", headers=bearer(key)).json())
        assert seen[-1]["activeJobsInQueue"] == 4
        waiter.join()
        assert scraped == [200]
        assert pool.peak["team.example"] == 4
    finally:
        stop(one)
        stop(other)
