"""Queue like Firecrawl, in front of the real one (issue 18, items 3 and its measurement): a team
of 2 slots starts three 20-page crawls at once. Every start is answered at once with an id; the
upstream never has more than the team's 2 pages in flight (the browser stand-in's log); each
crawl is charged Firecrawl's own figure. The times (acceptance, completion) and the peak go to
the suite's summary: measured, not asserted. One database (SQLite): what is measured is the
queue, and each run costs about a minute of CI.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.helpers import bearer, team_with_key
from tests.security.support import charged, make_plan, settled, wait_until
from tests.upstream.conftest import TIMINGS, Gateway, peak_in_flight, standin_pages

PAGES = 20


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_three_crawls_of_a_two_slot_team_are_accepted_at_once_and_held_to_two_pages(
    db: Database, gateway: Gateway
) -> None:
    # The free plan's concurrency (2) and credits; its 2 crawls a minute would refuse the
    # third by rate, as Firecrawl's free plan does: that is a rate limit, not the queue.
    plan = make_plan(db, "free-3-crawls", 500, concurrency=2, scrape_rpm=10, crawl_rpm=10)
    team, key, _ = team_with_key(db, now(), plan=plan)
    body = {
        "url": f"{gateway.upstream.site}/slow/index.html",
        "limit": PAGES,
        "crawlEntireDomain": True,
    }
    since = time.time()
    began = time.monotonic()

    def start(_: int) -> tuple[float, httpx.Response]:
        answer = httpx.post(f"{gateway.url}/v2/crawl", json=body, headers=bearer(key), timeout=60)
        return time.monotonic() - began, answer

    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(start, range(3)))
    assert [a.status_code for _, a in started] == [200] * 3, [a.text for _, a in started]
    accepted = max(t for t, _ in started)
    ids = [a.json()["id"] for _, a in started]

    def reads() -> list[dict[str, Any]]:
        return [
            httpx.get(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key), timeout=30).json()
            for job in ids
        ]

    def all_completed() -> bool:
        time.sleep(1.0)  # three reads a second: well within the team's job-read window
        return all(r.get("status") == "completed" for r in reads())

    wait_until(all_completed, "all three crawls read completed", 240)
    finished = time.monotonic() - began
    settled(db, team.id, timeout=60)
    assert [(r["status"], r["completed"]) for r in reads()] == [("completed", PAGES)] * 3
    upstream_used = sum(r["creditsUsed"] for r in reads())
    assert charged(db, team.id) == upstream_used == 3 * PAGES
    pages = [p for p in standin_pages(gateway.upstream.standin_log(), since) if "/slow/" in p[2]]
    peak = peak_in_flight(pages)
    assert len(pages) >= 3 * PAGES and peak <= 2, pages
    build = "v2-guard" if gateway.upstream.build.v2_crawl_has_the_acuc_guard() else "as-is"
    TIMINGS.setdefault(build, {})["three 20-page crawls, 2 slots"] = (
        f"all accepted within {accepted:.2f} s, all completed in {finished:.1f} s, "
        f"peak {peak} pages in flight, {len(pages)} pages loaded, "
        f"charged {upstream_used} = Firecrawl's creditsUsed"
    )
