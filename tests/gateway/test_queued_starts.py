"""Queue like Firecrawl (issue 18, item 3): a job start that finds no slot free is accepted at
once, held, stored, and started upstream by any gateway process once the team's slots free, in
arrival order; scrapes over the concurrency wait their turn up to their own timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from creditgate.app.asgi import create_app
from creditgate.domain.instants import now
from creditgate.services import audit, queued, reservations
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import UPSTREAM_KEY, Fake, Gateway, known_without_a_probe
from tests.gateway.test_page_concurrency import account, forwarded_caps, idle, pages_plan
from tests.helpers import bearer, team_with_key
from tests.security.support import charged, post, wait_until
from tests.security.support import start_crawl as start
from tests.server import app_in_thread


def crawl_posts(fake: Fake) -> list[str]:
    """The URL of every crawl the upstream was asked to start, in order."""
    return [b["url"] for m, p, b in fake.state.requests if m == "POST" and p.endswith("/crawl")]


def status(gateway: Gateway, key: str, job: str, path: str = "/v2/crawl") -> httpx.Response:
    return httpx.get(f"{gateway.url}{path}/{job}", headers=bearer(key), timeout=10)


def busy(db: Database, key_id: str, slots: int) -> str:
    """Take `slots` of the team's slots with a hold of no process (released by the test)."""
    request = ReserveRequest(key=key_id, credits=1, slots=slots)
    return reservations.reserve(db, request, now(), max_open=slots).id


@contextmanager
def gateway_on(db: Database, fake: Fake, follow_seconds: float) -> Iterator[Gateway]:
    ctx = AppContext(
        db=db,
        admin_token=ADMIN_TOKEN,
        upstream=Upstream(fake.url, UPSTREAM_KEY, timeout_s=1.0),
        follow_seconds=follow_seconds,
        queue_wait_seconds=3.0,
        page_grace_seconds=0.5,
    )
    known_without_a_probe(ctx, fake)
    with app_in_thread(create_app(ctx)) as url:
        yield Gateway(url, ctx)


def test_a_free_teams_three_crawls_are_accepted_at_once_and_start_in_order(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Free plan (concurrency 2), three crawls of 2 pages at once: all three answered at once
    with Firecrawl's start answer; the second and third wait (scraping, nothing done), start
    upstream one after the other as slots free, in arrival order; the team is charged exactly
    what the upstream billed."""
    pool = fake.state.use_workers(100, page_seconds=0.5)
    # The free plan's concurrency (2); its 2 crawls a minute would refuse the third by rate.
    team, key, _ = team_with_key(db, now(), plan=pages_plan(db, "free-ish", 2))
    ids = []
    for name in ("a", "b", "c"):
        answer = post(
            gateway, key, "/v1/crawl", {"url": f"https://team.example/{name}", "limit": 2}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"success", "id", "url"} and body["success"] is True
        assert body["url"] == f"{gateway.url}/v1/crawl/{body['id']}"
        ids.append(body["id"])
    waiting = queued.get(db, team.id, ids[2])
    assert waiting is not None and waiting.state is queued.State.QUEUED
    read = status(gateway, key, ids[2], "/v1/crawl").json()
    assert {
        k: read[k] for k in ("success", "status", "completed", "total", "creditsUsed", "data")
    } == {
        "success": True,
        "status": "scraping",
        "completed": 0,
        "total": 0,
        "creditsUsed": 0,
        "data": [],
    }
    assert isinstance(read["expiresAt"], str)
    active = httpx.get(f"{gateway.url}/v1/crawl/active", headers=bearer(key), timeout=10).json()
    assert [c["id"] for c in active["crawls"]] == ids  # queued crawls are the team's too
    wait_until(lambda: len(crawl_posts(fake)) == 3, "every crawl has started upstream", 30)
    wait_until(lambda: idle(gateway, key), "every crawl has run", 30)
    assert crawl_posts(fake) == [f"https://team.example/{n}" for n in "abc"]  # arrival order
    assert forwarded_caps(fake) == [2, 2, 2]
    assert pool.peak["team.example"] == 2  # none started before the slots were free
    for job in ids:  # the client polls its own ids; the upstream's never show
        read = status(gateway, key, job, "/v1/crawl").json()
        assert (read["status"], read["completed"]) == ("completed", 2)
    assert charged(db, team.id) == sum(fake.state.billed.values()) == 6
    assert audit.verify(db).ok


def test_a_queued_crawl_cancelled_before_it_starts_never_reaches_the_upstream(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    fake.state.use_workers(100, page_seconds=0.5)
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    blocker = busy(db, key_id, 2)
    job = start(gateway, key, {"url": "https://team.example/q", "limit": 10})
    held = account(gateway, key, "/v2/team/credit-usage")["data"]["remainingCredits"]
    cancelled = httpx.delete(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key), timeout=10)
    assert (cancelled.status_code, cancelled.json()) == (200, {"status": "cancelled"})
    after = account(gateway, key, "/v2/team/credit-usage")["data"]["remainingCredits"]
    assert after - held == 10  # its hold (its 10 pages) is released
    assert status(gateway, key, job).json()["status"] == "cancelled"
    assert account(gateway, key, "/v2/team/queue-status")["waitingJobsInQueue"] == 0
    reservations.release(db, blocker, now())
    wait_until(lambda: idle(gateway, key), "the slots are free")
    follower = gateway.ctx.follow_seconds
    seen = len(fake.state.requests)
    wait_until(lambda: queued.get(db, team.id, job) is not None, "a follower round has passed")
    assert follower > 0 and crawl_posts(fake) == [] and len(fake.state.requests) == seen
    assert charged(db, team.id) == 0


def test_another_team_can_neither_read_nor_cancel_a_queued_start(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2), name="a")
    _, other, _ = team_with_key(db, now(), plan="two", name="b")
    blocker = busy(db, key_id, 2)
    job = start(gateway, key, {"url": "https://a.example", "limit": 4})
    for method, path in (
        ("GET", f"/v2/crawl/{job}"),
        ("GET", f"/v1/crawl/{job}"),
        ("GET", f"/v1/crawl/{job}/errors"),
        ("DELETE", f"/v2/crawl/{job}"),
        ("DELETE", f"/v1/crawl/{job}"),
    ):
        answer = httpx.request(method, f"{gateway.url}{path}", headers=bearer(other), timeout=10)
        assert (answer.status_code, answer.json()) == (
            404,
            {"success": False, "error": "Job not found"},
        ), path
    still = queued.get(db, team.id, job)
    assert still is not None and still.state is queued.State.QUEUED
    assert fake.state.requests == []
    reservations.release(db, blocker, now())
    httpx.delete(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key), timeout=10)


def test_a_queued_start_left_by_a_dead_process_is_started_exactly_once(
    db: Database, fake: Fake
) -> None:
    """Process A accepts a crawl while the team's slots are taken, then stops for good (it
    never started it). Processes B and C, on the same database, both follow: the crawl is
    started upstream once, followed under the client's id, and charged what it billed."""
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    blocker = busy(db, key_id, 2)
    with gateway_on(db, fake, follow_seconds=0) as a:  # no follower: it never starts it
        job = start(a, key, {"url": "https://team.example/dead", "limit": 3})
    reservations.release(db, blocker, now())
    with gateway_on(db, fake, 0.1) as b, gateway_on(db, fake, 0.1) as c:
        wait_until(lambda: idle(b, key) and bool(crawl_posts(fake)), "the crawl ran", 30)
        wait_until(lambda: status(c, key, job).json()["status"] == "completed", "it completed")
        assert crawl_posts(fake) == ["https://team.example/dead"]
        wait_until(lambda: idle(c, key), "its hold is settled")
    started = queued.get(db, team.id, job)
    assert started is not None and started.state is queued.State.STARTED
    assert charged(db, team.id) == sum(fake.state.billed.values()) == 3


def test_a_start_abandoned_mid_start_is_failed_not_sent_again(db: Database, fake: Fake) -> None:
    """A process claimed a queued start (its slots taken, `starting`) and died before it
    recorded the upstream's answer: the upstream may have the job. It is never re-sent: it is
    failed with an error saying so, and its hold (its slots with it) ends one page grace later,
    not at once (found by an outside tester: the team's next start then ran beside the pages
    the upstream may be running, 4 pages on 2 slots)."""
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    blocker = busy(db, key_id, 2)
    with gateway_on(db, fake, follow_seconds=0) as a:
        job = start(a, key, {"url": "https://team.example/x", "limit": 3})
    reservations.release(db, blocker, now())
    claimed = queued.claim_next(db, team.id, "a-process-that-died", now())
    assert isinstance(claimed, queued.Claimed) and claimed.slots == 2
    with gateway_on(db, fake, 0.1) as b:
        b.ctx.page_grace_seconds = 3600
        given_up_at = now()
        wait_until(lambda: status(b, key, job).json()["status"] == "failed", "it is given up")
        read = status(b, key, job).json()
        assert "interrupted" in read["error"]
        hold = reservations.get(db, claimed.start.reservation_id, now())
        assert (hold.status, hold.slots) == ("open", 2)
        assert given_up_at + 3_600_000 <= hold.expires_at <= now() + 3_600_000
        nxt = start(b, key, {"url": "https://team.example/next", "limit": 3})
        time.sleep(0.5)  # follower rounds pass: the next start must still wait for the slots
        waiting = queued.get(db, team.id, nxt)
        assert waiting is not None and waiting.state is queued.State.QUEUED
    assert crawl_posts(fake) == []
    assert charged(db, team.id) == 0


def test_a_start_the_upstream_refuses_fails_with_its_error_and_costs_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    blocker = busy(db, key_id, 2)
    job = start(gateway, key, {"url": "https://team.example/fail", "limit": 3})
    reservations.release(db, blocker, now())
    wait_until(lambda: status(gateway, key, job).json()["status"] == "failed", "it failed")
    assert status(gateway, key, job).json()["error"] == "The crawl failed to start."
    wait_until(lambda: idle(gateway, key), "its hold is released")
    assert charged(db, team.id) == 0


def test_six_scrapes_on_a_plan_of_two_all_succeed(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Before: two ran, two waited, two got 429 at once (the queue admitted as many waiters as
    the concurrency). Now all six wait their turn within their timeout."""
    pool = fake.state.use_workers(100, page_seconds=0.3)
    team, key, _ = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    codes: list[int] = []

    def scrape(n: int) -> None:
        codes.append(
            post(gateway, key, "/v2/scrape", {"url": f"https://team.example/{n}"}).status_code
        )

    threads = [threading.Thread(target=scrape, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    assert pool.peak["team.example"] == 2
    assert charged(db, team.id) == sum(fake.state.billed.values()) == 6


def test_a_scrape_whose_wait_outlasts_its_timeout_gets_429(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "one", 1))
    blocker = busy(db, key_id, 1)
    refused = post(gateway, key, "/v1/scrape", {"url": "https://team.example/t", "timeout": 200})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    body: dict[str, Any] = refused.json()
    assert body["success"] is False and body["error"].startswith("Concurrency limit reached")
    assert fake.state.requests == []
    reservations.release(db, blocker, now())
    # Counted apart from a full queue (an outside tester found both under `queue_full`).
    scraped = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    timed_out = [
        line
        for line in scraped.splitlines()
        if line.startswith("creditgate_http_requests_total") and 'outcome="queue_timeout"' in line
    ]
    assert timed_out and float(timed_out[0].rsplit(" ", 1)[1]) >= 1


def test_metrics_say_how_many_starts_wait_and_for_how_long(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """An operator alerts on a stuck queue from two gauges (found missing by an outside
    tester: only counters, to subtract)."""
    team, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    blocker = busy(db, key_id, 2)

    def gauges() -> dict[str, float]:
        text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
        return {
            name: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            for name in (
                "creditgate_queued_starts_waiting",
                "creditgate_queued_starts_oldest_seconds",
            )
            if line.startswith(name + " ")
        }

    assert gauges() == {
        "creditgate_queued_starts_waiting": 0.0,
        "creditgate_queued_starts_oldest_seconds": 0.0,
    }
    job = start(gateway, key, {"url": "https://team.example/w", "limit": 2})
    time.sleep(0.2)
    waiting = gauges()
    assert waiting["creditgate_queued_starts_waiting"] == 1.0
    assert 0.0 < waiting["creditgate_queued_starts_oldest_seconds"] < 60
    cancel = httpx.delete(f"{gateway.url}/v1/crawl/{job}", headers=bearer(key), timeout=10)
    assert cancel.status_code == 200
    assert gauges()["creditgate_queued_starts_waiting"] == 0.0
    reservations.release(db, blocker, now())
    assert charged(db, team.id) == 0


def test_a_full_queue_is_429_at_once(db: Database, fake: Fake, gateway: Gateway) -> None:
    gateway.ctx.queue_room = 1
    _, key, key_id = team_with_key(db, now(), plan=pages_plan(db, "one", 1))
    blocker = busy(db, key_id, 1)
    waiter = threading.Thread(
        target=post,
        args=(gateway, key, "/v1/scrape", {"url": "https://team.example/w", "timeout": 3000}),
    )
    waiter.start()
    wait_until(
        lambda: account(gateway, key, "/v2/team/queue-status")["waitingJobsInQueue"] == 1,
        "one waits",
    )
    refused = post(gateway, key, "/v1/scrape", {"url": "https://team.example/r", "timeout": 3000})
    assert refused.status_code == 429
    reservations.release(db, blocker, now())
    waiter.join()
