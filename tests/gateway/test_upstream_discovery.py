"""A v2 crawl on a build whose v2 crawl cannot take `maxConcurrency` (the 2025-08 build): the
gateway learns it by a probe crawl of its own, then starts teams' v2 crawls through v1 (the same
stored crawl), each exactly once, with its pages in flight held to its slots (issue 18, item 2).
"""

from __future__ import annotations

import httpx

from creditgate.domain.instants import now
from creditgate.gateway import discovery
from creditgate.services import account, teams
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.gateway.test_page_concurrency import pages_plan
from tests.helpers import bearer, team_with_key
from tests.security.support import wait_until

PROBE = discovery.PROBE_URL


def unknown(gateway: Gateway, fake: Fake, takes_concurrency: bool) -> None:
    """The fake behaves as that build, and the gateway has not yet asked it."""
    fake.state.v2_crawl_takes_concurrency = takes_concurrency
    assert gateway.ctx.upstream is not None
    discovery.traits(gateway.ctx.upstream).v2_crawl_concurrency = None


def charged(db: Database, team_id: str) -> int:
    return sum(r.credits for r in account.history(db, teams.get_team(db, team_id), True, now()))


def sent(fake: Fake) -> list[tuple[str, str, object]]:
    return [(m, p, body.get("url")) for m, p, body in fake.state.requests]


def test_on_the_2025_08_build_a_v2_crawl_starts_once_through_v1(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    unknown(gateway, fake, takes_concurrency=False)
    team, key, _ = team_with_key(db, now())
    body = {
        "url": "https://site.example/index.html",
        "limit": 6,
        "sitemap": "skip",
        "crawlEntireDomain": True,
        "scrapeOptions": {"formats": ["markdown", {"type": "screenshot", "fullPage": True}]},
    }
    started = httpx.post(f"{gateway.url}/v2/crawl", json=body, headers=bearer(key), timeout=10)
    assert started.status_code == 200, started.text
    job_id = started.json()["id"]
    assert started.json()["url"] == f"{gateway.url}/v2/crawl/{job_id}"
    probe_id = next(i for i, c in fake.state.crawls.items() if c.url == PROBE)
    assert sent(fake) == [
        ("POST", "/v2/crawl", PROBE),  # with maxConcurrency: the 500
        ("POST", "/v2/crawl", PROBE),  # without: started, so only the field fails
        ("DELETE", f"/v2/crawl/{probe_id}", None),
        ("POST", "/v1/crawl", body["url"]),  # the team's crawl, once
    ]
    assert "maxConcurrency" in fake.state.requests[0][2]
    assert "maxConcurrency" not in fake.state.requests[1][2]
    forwarded = fake.state.requests[3][2]
    # held to the slots it holds: the default plan's 5 of its 6 pages
    assert forwarded["maxConcurrency"] == fake.state.crawls[job_id].max_concurrency == 5
    assert forwarded["ignoreSitemap"] is True and forwarded["maxDepth"] == 9999
    assert forwarded["scrapeOptions"]["formats"] == ["markdown", "screenshot@fullPage"]
    assert fake.state.crawls[probe_id].completed == 0 and fake.state.billed[probe_id] == 0

    # Read through v2 as if v2 had started it; charged what the upstream billed, once.
    wait_until(lambda: fake.state.crawls[job_id].status == "completed", "the crawl ends")
    wait_until(lambda: charged(db, team.id) == 6, "the crawl is settled")
    status = httpx.get(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(key), timeout=10)
    assert status.json()["creditsUsed"] == fake.state.billed[job_id] == 6
    active = httpx.get(f"{gateway.url}/v2/crawl/active", headers=bearer(key), timeout=10)
    assert active.json()["crawls"] == []  # the crawl has ended; the probe never was listed
    for method in ("GET", "DELETE"):  # the probe is no team's: nobody reads or cancels it
        peek = httpx.request(
            method, f"{gateway.url}/v2/crawl/{probe_id}", headers=bearer(key), timeout=10
        )
        assert (peek.status_code, peek.json()["error"]) == (404, "Job not found")

    # Learned once per process: a second crawl asks nothing.
    again = httpx.post(f"{gateway.url}/v2/crawl", json=body, headers=bearer(key), timeout=10)
    assert again.status_code == 200
    starts = [(p, url) for m, p, url in sent(fake) if m == "POST"]
    assert starts[2:] == [("/v1/crawl", body["url"])] * 2


def test_a_crawl_with_no_v1_form_is_refused_there_and_costs_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    unknown(gateway, fake, takes_concurrency=False)
    team, key, _ = team_with_key(db, now())
    before = account.credit_usage(db, teams.get_team(db, team.id), now()).remaining
    refused = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://site.example/index.html", "prompt": "only the blog"},
        headers=bearer(key),
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["success"] is False and refused.json()["code"] == "BAD_REQUEST"
    assert "`prompt`" in refused.json()["error"] and "/v1/crawl" in refused.json()["error"]
    assert [m for m, _, url in sent(fake) if url != PROBE] == ["DELETE"]  # the probe's only
    assert account.credit_usage(db, teams.get_team(db, team.id), now()).remaining == before
    with db.read() as conn:
        from sqlalchemy import text

        open_holds = conn.execute(
            text("SELECT count(*) FROM reservations WHERE status = 'open'")
        ).scalar_one()
    assert open_holds == 0


def test_an_invalid_crawl_gets_the_upstreams_own_answer(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    unknown(gateway, fake, takes_concurrency=False)
    _, key, _ = team_with_key(db, now())
    answer = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://site.example/index.html", "limit": "many"},
        headers=bearer(key),
        timeout=10,
    )
    assert answer.status_code == 400  # creditgate's own check, or the upstream's: never a 500


def test_on_a_fixed_build_v2_crawls_go_to_v2(db: Database, fake: Fake, gateway: Gateway) -> None:
    unknown(gateway, fake, takes_concurrency=True)
    _, key, _ = team_with_key(db, now())
    body = {"url": "https://site.example/index.html", "limit": 3, "prompt": "only the blog"}
    started = httpx.post(f"{gateway.url}/v2/crawl", json=body, headers=bearer(key), timeout=10)
    assert started.status_code == 200, started.text
    job_id = started.json()["id"]
    probe_id = next(i for i, c in fake.state.crawls.items() if c.url == PROBE)
    assert sent(fake) == [
        ("POST", "/v2/crawl", PROBE),
        ("DELETE", f"/v2/crawl/{probe_id}", None),
        ("POST", "/v2/crawl", body["url"]),
    ]
    assert fake.state.requests[2][2]["maxConcurrency"] == fake.state.crawls[job_id].max_concurrency


def test_an_upstream_that_cannot_say_is_asked_again_later(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Down at first: not known, v2 crawls are forwarded as they came; asked again only after
    the retry interval, not on every crawl."""
    unknown(gateway, fake, takes_concurrency=True)
    assert gateway.ctx.upstream is not None
    known = discovery.traits(gateway.ctx.upstream)
    real_base = gateway.ctx.upstream.client.base_url
    gateway.ctx.upstream.client.base_url = httpx.URL("http://127.0.0.1:9")  # nothing listens
    try:
        _, key, _ = team_with_key(db, now())
        httpx.post(
            f"{gateway.url}/v2/crawl",
            json={"url": "https://site.example/index.html", "limit": 2},
            headers=bearer(key),
            timeout=15,
        )
        assert known.v2_crawl_concurrency is None and known.asked_at is not None
    finally:
        gateway.ctx.upstream.client.base_url = real_base
    asked_at = known.asked_at
    started = httpx.post(
        f"{gateway.url}/v2/crawl",
        json={"url": "https://site.example/index.html", "limit": 2},
        headers=bearer(key),
        timeout=10,
    )
    assert started.status_code == 200
    assert known.asked_at == asked_at and known.v2_crawl_concurrency is None
    assert sent(fake) == [("POST", "/v2/crawl", "https://site.example/index.html")]


def test_a_queued_v2_crawl_is_started_through_v1_when_its_turn_comes(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """The form is chosen again when a queued start is forwarded (gateway/proxy.start_queued):
    both crawls of a team of 2 slots reach the 2025-08 upstream as v1 crawls, one after the
    other, each capped at its slots, and are read through v2 under the client's ids."""
    unknown(gateway, fake, takes_concurrency=False)
    fake.state.use_workers(100, page_seconds=0.3)
    team, key, _ = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    body = {"url": "https://team.example/index.html", "limit": 2}
    ids = [
        httpx.post(f"{gateway.url}/v2/crawl", json=body, headers=bearer(key), timeout=10).json()[
            "id"
        ]
        for _ in range(2)
    ]
    wait_until(lambda: charged(db, team.id) == 4, "both crawls have run and been charged", 30)
    starts = [(p, b.get("maxConcurrency")) for m, p, b in fake.state.requests if m == "POST"]
    assert starts[2:] == [("/v1/crawl", 2), ("/v1/crawl", 2)]  # after the probe's two
    for job_id in ids:
        read = httpx.get(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(key), timeout=10)
        assert (read.json()["status"], read.json()["completed"]) == ("completed", 2)
