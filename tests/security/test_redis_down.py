"""Redis down or frozen: rate limits fall back to the process's memory, quickly, never a 500."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import plans
from creditgate.storage.database import Database
from creditgate.web import limits
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import Clock
from tests.gateway.conftest import Fake, early_in_a_minute, known_without_a_probe
from tests.helpers import bearer, team_with_key
from tests.security.support import wait_until
from tests.server import app_in_thread, free_port


@pytest.fixture(params=["unreachable", "frozen"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "unreachable":
        yield f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        return
    # The kernel completes connections into the backlog; nothing ever reads or answers.
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(64)
        yield f"redis://127.0.0.1:{frozen.getsockname()[1]}/0"


def test_a_failing_redis_leaves_rate_limits_to_the_process_and_logs_once(
    ctx: AppContext,
    client: TestClient,
    db: Database,
    clock: Clock,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _team, key, _key_id = team_with_key(db, clock.now)
    ctx.account_rpm = 3
    # Every request tries Redis again (no pause after a failure); still it is logged once.
    monkeypatch.setattr(limits, "REDIS_RETRY_SECONDS", 0.0, raising=False)
    ctx.limiter = limits.RedisLimiter(redis_url)
    statuses = []
    with caplog.at_level(logging.WARNING, logger="creditgate.limits"):
        for _ in range(4):
            started = time.monotonic()
            response = client.get("/v2/team/credit-usage", headers=bearer(key))
            assert time.monotonic() - started < 2, "a frozen Redis must not hold a request"
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert response.json()["error"].startswith(
        "Rate limit exceeded. Consumed (req/min): 3, Remaining (req/min): 0."
    )
    records = [(r.name, r.levelname) for r in caplog.records]
    assert records == [("creditgate.limits", "ERROR")]
    assert caplog.records[0].getMessage().startswith("Redis failed (")


def test_queue_status_answers_from_the_process_when_redis_fails(
    ctx: AppContext, client: TestClient, db: Database, clock: Clock, redis_url: str
) -> None:
    """queue-status reads the queue's length from Redis (issue #12): down or frozen, it still
    answers at once, with this process's own count."""
    _team, key, _key_id = team_with_key(db, clock.now)
    ctx.limiter = limits.RedisLimiter(redis_url)
    started = time.monotonic()
    answer = client.get("/v2/team/queue-status", headers=bearer(key))
    assert time.monotonic() - started < 2, "a frozen Redis must not hold queue-status"
    assert answer.status_code == 200
    body = answer.json()
    assert (body["jobsInQueue"], body["activeJobsInQueue"], body["waitingJobsInQueue"]) == (0, 0, 0)


def test_while_redis_fails_two_gateways_share_the_plans_rate_between_them(
    db: Database, fake: Fake
) -> None:
    """Issue 19, item 5: Redis unreachable, each of two gateway processes on one database
    allows ceil(limit / 2) of a window, so the team gets at most the plan's rate plus one
    (processes - 1) in a minute, not twice it."""
    plans.create_plan(db, Plan("ten", 1000, "month", 5, 10, 10), now())
    _, key, _ = team_with_key(db, now(), plan="ten")
    limiters = [limits.RedisLimiter(f"redis://127.0.0.1:{free_port()}/0") for _ in range(2)]
    contexts = [
        AppContext(
            db=db,
            upstream=Upstream(fake.url, None, timeout_s=5.0),
            limiter=limiter,
            follow_seconds=0,
            webhook_seconds=0,
        )
        for limiter in limiters
    ]
    with ExitStack() as stack:
        urls = []
        for ctx in contexts:
            known_without_a_probe(ctx, fake)
            urls.append(stack.enter_context(app_in_thread(create_app(ctx))))
        # each counts the live processes at its heartbeat (every 5 s)
        wait_until(lambda: all(x.processes == 2 for x in limiters), "both count two processes")
        early_in_a_minute()
        statuses = [
            httpx.post(
                f"{urls[i % 2]}/v2/scrape",
                json={"url": f"https://e.com/{i}"},
                headers=bearer(key),
                timeout=10,
            ).status_code
            for i in range(30)
        ]
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= 10 + (2 - 1)  # the stated bound
    assert statuses.count(200) == 10  # ceil(10 / 2) = 5 in each process
