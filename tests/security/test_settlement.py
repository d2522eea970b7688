"""Settle as Firecrawl reports, to the end (issue 7, "What to build" 5).

Findings from the list of answers that differ from Firecrawl's own: a cancelled crawl settled at
cancel time; an upstream 5xx turned into a 502 with its `code` dropped; v1 search priced from the
table while v2 is charged what Firecrawl reports; a crawl start dropped by the upstream answering
500 and leaving a 24-hour hold; a kill -9 leaving in-flight holds for 15 minutes. And from item
5: a truncated answer charges nothing; an out-of-range reported figure never crashes a response.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import httpx

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer, team_with_key
from tests.security.support import (
    charged,
    envelope,
    open_holds,
    post,
    remaining,
    settled,
    start_crawl,
    upstream_final,
    wait_until,
)
from tests.server import free_port, start, stop


def test_a_cancelled_crawl_is_charged_the_pages_that_finish_after_the_cancel(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "a cancelled crawl is settled at cancel time (9 credits), while Firecrawl
    finishes its in-flight pages and reports 17": after a DELETE through the gateway the job is
    followed until the upstream's totals stop moving, and the final charge is the upstream's
    final creditsUsed (pages done before the cancel + the pages in flight)."""
    team, key, _ = team_with_key(db, now())
    job_id = start_crawl(gateway, key, {"url": "https://site.example", "limit": 4})
    cancelled = httpx.delete(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(key))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    crawl = fake.state.crawls[job_id]
    assert crawl.done_at_cancel is not None, "the crawl had finished before the cancel"
    settled(db, team.id)
    final = upstream_final(fake, job_id)
    assert final == crawl.done_at_cancel + fake.state.after_cancel
    assert charged(db, team.id) == final
    assert remaining(db, team.id) == 3000 - final


def test_v1_search_costs_what_v2_search_reports_for_the_same_work(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "v1 search is charged 2 per 10 results from the table, v2 search what Firecrawl
    reports (1 per result): the same work, two prices". Seven results cost 7 through
    `/v2/search` (reported), `/v1/search` and `/v1/x402/search` (not reported) alike."""
    team, key, _ = team_with_key(db, now())
    costs = {}
    for path in ("/v2/search", "/v1/search", "/v1/x402/search"):
        before = remaining(db, team.id)
        found = post(gateway, key, path, {"query": "creditgate", "limit": 7})
        assert found.status_code == 200, found.text
        costs[path] = before - remaining(db, team.id)
    assert costs == {"/v2/search": 7, "/v1/search": 7, "/v1/x402/search": 7}
    assert sum(fake.state.billed.values()) == charged(db, team.id) == 21


def test_an_upstream_5xx_passes_through_with_its_status_and_code_and_costs_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "an upstream 5xx becomes a 502 with the `code` dropped and the text prefixed":
    Firecrawl's 500 reaches the client as Firecrawl sent it, for a scrape and a crawl start,
    and nothing is charged or held."""
    team, key, _ = team_with_key(db, now())
    scraped = post(gateway, key, "/v2/scrape", {"url": "https://example.com/fail"})
    assert (scraped.status_code, scraped.json()) == (
        500,
        {
            "success": False,
            "code": "SCRAPE_ALL_ENGINES_FAILED",
            "error": "All scraping engines failed!",
        },
    )
    crawled = post(gateway, key, "/v2/crawl", {"url": "https://site.example/fail", "limit": 2})
    assert (crawled.status_code, crawled.json()) == (
        500,
        {"success": False, "code": "CRAWL_FAILED", "error": "The crawl failed to start."},
    )
    assert (remaining(db, team.id), open_holds(db, team.id)) == (3000, 0)


def test_creditgates_own_502_and_504_are_only_for_an_upstream_that_cannot_answer(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """The other side of the 5xx finding: a connection dropped before any answer is
    creditgate's 502, an answer later than the timeout its 504, both in the envelope and free.
    The upstream may still be scraping: the holds keep their page slots the page grace (0.5 s
    in these tests), then are released."""
    team, key, _ = team_with_key(db, now())
    dropped = post(gateway, key, "/v2/scrape", {"url": "https://example.com/drop"})
    late = post(gateway, key, "/v2/scrape", {"url": "https://example.com/slow"})
    assert (dropped.status_code, late.status_code) == (502, 504)
    envelope(dropped.content)
    envelope(late.content)
    settled(db, team.id, timeout=5)
    assert (remaining(db, team.id), charged(db, team.id)) == (3000, 0)


def test_a_truncated_upstream_answer_charges_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Item 5, "a truncated answer (upstream dropped mid-stream) charges nothing": the upstream
    sends a 200 head and half its JSON, then closes. Whatever the client sees (a broken stream
    or a 502), the hold is released and nothing is charged."""
    team, key, _ = team_with_key(db, now())
    try:
        answer = post(gateway, key, "/v2/scrape", {"url": "https://example.com/truncate"})
        outcome = f"{answer.status_code} {answer.text[:80]}"
    except httpx.TransportError as exc:
        outcome = f"broken stream: {exc!r}"
    settled(db, team.id)
    assert (charged(db, team.id), remaining(db, team.id)) == (0, 3000), outcome


def test_an_out_of_range_reported_cost_never_crashes_the_answer_and_the_table_prices_it(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Item 5, "an out-of-range reported figure is logged and replaced by the cost table, never
    a crash mid-response": a scrape reporting `creditsUsed: -5` or 10**20 reaches the client
    whole (a 200 with the upstream's document) and is charged 1 credit, a plain scrape's price."""
    team, key, _ = team_with_key(db, now())
    seen = {}
    for url in ("https://example.com/liar", "https://example.com/liar-huge"):
        try:
            answer = post(gateway, key, "/v2/scrape", {"url": url})
            seen[url] = (answer.status_code, answer.json()["data"]["metadata"]["url"])
        except (httpx.TransportError, ValueError) as exc:
            seen[url] = (0, repr(exc))
    assert seen == {url: (200, url) for url in seen}
    settled(db, team.id)
    assert (charged(db, team.id), remaining(db, team.id)) == (2, 3000 - 2)


def test_a_job_start_dropped_by_the_upstream_answers_502_and_leaves_no_hold(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "a crawl start whose upstream drops the connection answers 500 and leaves a
    24-hour hold": the upstream sends the head of its answer and closes; the client gets
    creditgate's 502 and the team has no hold and its whole balance once the page grace (the
    job may have started upstream: its slots stay that long) has passed."""
    team, key, _ = team_with_key(db, now())
    statuses = {}
    for path, body in (
        ("/v2/crawl", {"url": "https://site.example/drop", "limit": 3}),
        ("/v2/batch/scrape", {"urls": ["https://site.example/drop"]}),
    ):
        answer = post(gateway, key, path, body)
        statuses[path] = answer.status_code
        if answer.status_code == 502:
            envelope(answer.content)
    assert statuses == {"/v2/crawl": 502, "/v2/batch/scrape": 502}
    settled(db, team.id, timeout=5)
    assert (open_holds(db, team.id), remaining(db, team.id)) == (0, 3000)


def test_the_holds_of_a_killed_gateway_are_released_when_a_gateway_starts(
    pg: Database, postgres_url: str, fake: Fake
) -> None:
    """Finding "a kill -9 leaves the in-flight requests' holds (and concurrency slots) for 15
    minutes": a gateway killed while a scrape is in flight leaves a hold no live process owns;
    the next gateway to start releases it at once (not after the 15-minute TTL)."""
    team, key, _ = team_with_key(pg, now())
    env = {"CREDITGATE_UPSTREAM_URL": fake.url, "CREDITGATE_FOLLOW_SECONDS": "0.2"}
    first = start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env)

    def in_flight() -> None:
        with contextlib.suppress(httpx.TransportError):  # the gateway is killed under it
            httpx.post(
                f"{first.url}/v2/scrape",
                json={"url": "https://example.com/slow"},
                headers=bearer(key),
                timeout=10,
            )

    client = threading.Thread(target=in_flight)
    try:
        client.start()
        wait_until(lambda: open_holds(pg, team.id) == 1, "the scrape holds its credit")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
    finally:
        client.join()
        if first.process.poll() is None:
            stop(first)
    assert open_holds(pg, team.id) == 1  # the dead process's hold, still there
    second = start(postgres_url, ADMIN_TOKEN, free_port(), extra_env=env)
    try:  # at its start, before it answers anything: the dead pid ran on this same host
        assert open_holds(pg, team.id) == 0
    finally:
        stop(second)
    assert (remaining(pg, team.id), charged(pg, team.id)) == (3000, 0)
