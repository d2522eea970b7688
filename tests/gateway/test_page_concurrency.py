"""Plan concurrency counts pages in flight upstream, as Firecrawl counts it (issue #12).

The fake upstream runs every page on a shared pool of workers for a fixed time and records, per
team (a target's host), how many pages it had in flight at once. Firecrawl's own suite
(`apps/api/src/__tests__/snips/v2/concurrency.test.ts`) asserts three properties, checked here
through the gateway: a crawl of 40 pages on a team of concurrency 20 peaks at exactly 20, a
crawl's `maxConcurrency: 5` caps it at 5, and two such crawls stack to 10.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import plans
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.helpers import bearer, team_with_key
from tests.security.support import post, wait_until
from tests.security.support import start_crawl as start
from tests.server import app_in_thread


def pages_plan(db: Database, plan_id: str, concurrency: int) -> str:
    plans.create_plan(db, Plan(plan_id, 100_000, "month", concurrency, 1_000, 1_000), now())
    return plan_id


def account(gateway: Gateway, key: str, path: str) -> dict[str, Any]:
    answer = httpx.get(f"{gateway.url}{path}", headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = answer.json()
    return payload


def finished(fake: Fake, *job_ids: str) -> bool:
    return all(fake.state.crawls[j].status != "scraping" for j in job_ids)


def forwarded_caps(fake: Fake) -> list[object]:
    """The maxConcurrency of every crawl and batch the upstream was asked to start."""
    return [
        body.get("maxConcurrency")
        for method, path, body in fake.state.requests
        if method == "POST" and path.endswith(("/crawl", "/batch/scrape"))
    ]


def idle(gateway: Gateway, key: str) -> bool:
    return bool(account(gateway, key, "/v2/concurrency-check")["concurrency"] == 0)


# --- Firecrawl's three properties ----------------------------------------------------------


def test_a_crawl_peaks_at_the_plans_concurrency(db: Database, fake: Fake, gateway: Gateway) -> None:
    pool = fake.state.use_workers(100, page_seconds=0.1)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "twenty", 20))
    job = start(gateway, key, {"url": "https://team.example", "limit": 40})
    wait_until(lambda: finished(fake, job), "the crawl has run")
    assert fake.state.crawls[job].completed == 40
    assert forwarded_caps(fake) == [20]
    assert pool.peak["team.example"] == 20


def test_a_crawls_max_concurrency_caps_it(db: Database, fake: Fake, gateway: Gateway) -> None:
    pool = fake.state.use_workers(100, page_seconds=0.05)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "twenty", 20))
    job = start(gateway, key, {"url": "https://team.example", "limit": 40, "maxConcurrency": 5})
    wait_until(lambda: finished(fake, job), "the crawl has run")
    assert forwarded_caps(fake) == [5]
    assert pool.peak["team.example"] == 5


def test_two_capped_crawls_stack(db: Database, fake: Fake, gateway: Gateway) -> None:
    pool = fake.state.use_workers(100, page_seconds=0.1)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "twenty", 20))
    body = {"url": "https://team.example", "limit": 40, "maxConcurrency": 5}
    jobs = [start(gateway, key, body), start(gateway, key, body)]
    wait_until(lambda: finished(fake, *jobs), "both crawls have run")
    assert forwarded_caps(fake) == [5, 5]
    assert pool.peak["team.example"] == 10


# --- how slots are granted and given back ---------------------------------------------------


def test_a_crawl_is_granted_no_more_than_it_asks_its_pages_or_the_plan(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Asked 50 on a plan of 20: 20. A limit of 3: 3 (it never has more pages). A batch of 2
    URLs: 2. Each is told upstream as its maxConcurrency."""
    fake.state.use_workers(100, page_seconds=0.01)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "twenty", 20))
    for body, path in (
        ({"url": "https://team.example", "limit": 40, "maxConcurrency": 50}, "/v2/crawl"),
        ({"url": "https://team.example", "limit": 3}, "/v1/crawl"),
        ({"urls": ["https://team.example/1", "https://team.example/2"]}, "/v2/batch/scrape"),
    ):
        start(gateway, key, body, path)
        wait_until(lambda: finished(fake, *fake.state.crawls), "the job has run")
        wait_until(lambda: idle(gateway, key), "its slots are given back")
    assert forwarded_caps(fake) == [20, 3, 2]


def test_a_crawl_gets_the_slots_left_and_shares_the_plan_with_scrapes(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Concurrency 3, one scrape running: a crawl that asks for all three gets the two left,
    and the upstream never runs more than three of the team's pages at once."""
    pool = fake.state.use_workers(100, page_seconds=0.4)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "three", 3))
    scraped: list[int] = []
    scraper = threading.Thread(
        target=lambda: scraped.append(
            post(gateway, key, "/v2/scrape", {"url": "https://team.example/s"}).status_code
        )
    )
    scraper.start()
    wait_until(lambda: pool.busy["team.example"] == 1, "the scrape runs upstream")
    job = start(gateway, key, {"url": "https://team.example", "limit": 6})
    scraper.join()
    wait_until(lambda: finished(fake, job), "the crawl has run")
    assert scraped == [200]
    assert forwarded_caps(fake) == [2]
    assert pool.peak["team.example"] == 3


def test_a_job_finding_no_slot_is_accepted_at_once_and_starts_when_one_is_free(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Concurrency 2, taken by a crawl of 2 pages: a second crawl is accepted at once, as
    Firecrawl accepts it (issue 18, item 3; before, it waited up to 30 s for a slot and then got
    429), counts as waiting in queue-status, and starts upstream once the first has ended,
    with the slots it left."""
    # Pages long enough that the second crawl is seen waiting before the first can end.
    pool = fake.state.use_workers(100, page_seconds=2.0)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "two", 2))
    first = start(gateway, key, {"url": "https://team.example", "limit": 2})
    second = start(gateway, key, {"url": "https://team.example", "limit": 4})
    assert len(fake.state.crawls) == 1  # the second is not upstream yet
    assert account(gateway, key, "/v2/team/queue-status")["waitingJobsInQueue"] == 1
    wait_until(lambda: len(fake.state.crawls) == 2, "the second crawl starts upstream")
    assert finished(fake, first)  # it started only once the first had ended
    wait_until(lambda: idle(gateway, key), "the second crawl has run and given its slots back")
    assert forwarded_caps(fake) == [2, 2]
    assert pool.peak["team.example"] == 2
    status = httpx.get(f"{gateway.url}/v2/crawl/{second}", headers=bearer(key), timeout=10)
    assert (status.json()["status"], status.json()["completed"]) == ("completed", 4)


def test_queue_status_and_concurrency_check_count_pages(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """While a crawl of 40 pages runs 4 at a time: 4 active, the pages it has found beyond
    its 4 waiting; the plan's 10 as maxConcurrency. Once it ends: nothing."""
    fake.state.use_workers(100, page_seconds=0.3)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "ten", 10))
    job = start(gateway, key, {"url": "https://team.example", "limit": 40, "maxConcurrency": 4})
    httpx.get(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key), timeout=10)  # a report
    queue = account(gateway, key, "/v2/team/queue-status")
    completed = fake.state.crawls[job].completed
    assert queue["activeJobsInQueue"] == 4
    assert queue["maxConcurrency"] == 10
    # Found and not done at the last report, less the 4 in flight: at most 36, at least what
    # is still left now beyond the 4.
    assert 40 - completed - 4 <= queue["waitingJobsInQueue"] <= 36
    assert queue["jobsInQueue"] == queue["activeJobsInQueue"] + queue["waitingJobsInQueue"]
    assert account(gateway, key, "/v1/concurrency-check") == {
        "success": True,
        "concurrency": 4,
        "maxConcurrency": 10,
    }
    wait_until(lambda: finished(fake, job), "the crawl has run", timeout=30)
    wait_until(lambda: idle(gateway, key), "its slots are given back")
    queue = account(gateway, key, "/v2/team/queue-status")
    assert (queue["jobsInQueue"], queue["activeJobsInQueue"], queue["waitingJobsInQueue"]) == (
        0,
        0,
        0,
    )


def test_a_cancelled_crawl_keeps_its_slots_while_its_pages_in_flight_may_run(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding (outside test): pages longer than three polls kept running upstream after a
    cancel while the crawl's slots were given back (its total had stopped moving), and a
    second crawl of the team ran 8 pages on a plan of 4. Now the slots stay until the upstream
    reports every page ended (its pages that never ran fail and leave its total, as the real
    build's do), and the pages finishing meanwhile are charged."""
    gateway.ctx.page_grace_seconds = 2.5
    pool = fake.state.use_workers(100, page_seconds=1.5)
    _, key, _ = team_with_key(db, now(), plan=pages_plan(db, "four", 4))
    job = start(gateway, key, {"url": "https://team.example", "limit": 40})
    wait_until(lambda: pool.busy["team.example"] == 4, "its pages run")
    cancelled = httpx.delete(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key), timeout=10)
    assert cancelled.status_code == 200
    assert account(gateway, key, "/v2/team/queue-status")["waitingJobsInQueue"] == 0
    # Another crawl is accepted, and queued: no slot for it while the pages in flight run.
    queued = start(gateway, key, {"url": "https://team.example", "limit": 4})
    while True:  # the pages in flight finish upstream, after the cancel
        # The gateway first, then the upstream: a page still running after the read was
        # running during it (none starts meanwhile), so its slot had to be held then.
        held = account(gateway, key, "/v2/concurrency-check")["concurrency"]
        crawls = len(fake.state.crawls)
        if not pool.busy["team.example"]:
            break
        assert (held, crawls) == (4, 1)
    assert fake.state.crawls[job].completed == 4  # the pages in flight did finish
    wait_until(lambda: len(fake.state.crawls) == 2, "the queued crawl starts after the grace")
    wait_until(lambda: idle(gateway, key), "its slots are given back")
    assert pool.peak["team.example"] == 4
    status = httpx.get(f"{gateway.url}/v2/crawl/{queued}", headers=bearer(key), timeout=10)
    assert status.json()["status"] == "completed"
    used = account(gateway, key, "/v2/team/credit-usage")["data"]
    assert used["planCredits"] - used["remainingCredits"] == 4 + 4  # all of both, charged


# --- fairness between teams on a shared upstream --------------------------------------------

WORKERS = 52  # a free team's 2 pages and a standard team's 50 fit on the upstream at once


def _workload(
    url: str, free_key: str, standard_key: str, scrapes_each: int
) -> dict[str, list[int]]:
    """The free team starts two crawls of 20 pages (no cap: they ask for everything), while
    the standard team crawls 100 pages at up to 40 at once and scrapes from four threads.
    `url` is where they are sent (the gateway, or the upstream itself). Status codes by what."""
    statuses: dict[str, list[int]] = {"free crawls": [], "standard": []}

    def call(key: str, path: str, body: dict[str, Any], into: str) -> None:
        answer = httpx.post(f"{url}{path}", json=body, headers=bearer(key), timeout=30)
        statuses[into].append(answer.status_code)

    def scraper(n: int) -> None:
        for i in range(scrapes_each):
            body = {"url": f"https://standard.example/s{n}-{i}"}
            call(standard_key, "/v2/scrape", body, "standard")

    free = {"url": "https://free.example", "limit": 20}
    standard = {"url": "https://standard.example", "limit": 100, "maxConcurrency": 40}
    threads = [
        threading.Thread(target=call, args=(free_key, "/v2/crawl", free, "free crawls")),
        threading.Thread(target=call, args=(free_key, "/v2/crawl", free, "free crawls")),
        threading.Thread(target=call, args=(standard_key, "/v2/crawl", standard, "standard")),
        *(threading.Thread(target=scraper, args=(n,)) for n in range(4)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_a_free_teams_crawls_never_take_a_standard_teams_share(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Two teams on one upstream of 52 workers: free (concurrency 2) crawls twice, uncapped;
    standard (concurrency 50) crawls at 40 and scrapes beside it. Upstream the free team never
    has more than 2 pages in flight, the standard team never more than 50, and no page of the
    standard team ever waits for a worker: what the free team runs cannot slow it."""
    pool = fake.state.use_workers(WORKERS, page_seconds=0.1)
    _, free_key, _ = team_with_key(db, now(), plan="free", name="free")
    _, standard_key, _ = team_with_key(db, now(), plan="standard", name="standard")
    statuses = _workload(gateway.url, free_key, standard_key, scrapes_each=5)
    wait_until(lambda: finished(fake, *fake.state.crawls), "every crawl has run", timeout=30)
    assert statuses == {"free crawls": [200, 200], "standard": [200] * 21}
    assert pool.peak["free.example"] == 2  # its plan's share, used
    assert pool.peak["standard.example"] <= 50
    assert pool.total_peak <= WORKERS
    assert max(pool.waits["standard.example"]) < 0.05  # half a page: never queued upstream


def test_without_the_gateway_the_free_teams_crawls_take_the_upstream() -> None:
    """The instrument sees unfairness where there is some: the same workload sent straight to
    the upstream (nothing counts pages) has the free team's crawls take every worker, and the
    standard team's pages queue behind them."""
    state = FakeState()
    pool = state.use_workers(WORKERS, page_seconds=0.1)
    with app_in_thread(make_app(state)) as url:
        state.base_url = url
        _workload(url, "fc-free", "fc-standard", scrapes_each=5)
        wait_until(lambda: all(c.status != "scraping" for c in state.crawls.values()), "done")
    assert pool.peak["free.example"] > 2
    assert max(pool.waits["standard.example"]) >= 0.05


def test_another_teams_slots_are_neither_seen_nor_taken(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Team A's crawl takes all its plan's slots; team B's queue-status and concurrency-check
    show none of them, and B's scrape is admitted at once."""
    pool = fake.state.use_workers(100, page_seconds=0.5)
    _, key_a, _ = team_with_key(db, now(), plan=pages_plan(db, "four", 4), name="a")
    _, key_b, _ = team_with_key(db, now(), plan="four", name="b")
    job = start(gateway, key_a, {"url": "https://a.example", "limit": 8})
    httpx.get(f"{gateway.url}/v2/crawl/{job}", headers=bearer(key_a), timeout=10)  # a report
    assert account(gateway, key_a, "/v2/concurrency-check")["concurrency"] == 4
    seen_by_b = account(gateway, key_b, "/v2/team/queue-status")
    assert (seen_by_b["activeJobsInQueue"], seen_by_b["waitingJobsInQueue"]) == (0, 0)
    assert account(gateway, key_b, "/v2/concurrency-check")["concurrency"] == 0
    scraped = post(gateway, key_b, "/v2/scrape", {"url": "https://b.example/page"})
    assert scraped.status_code == 200
    wait_until(lambda: finished(fake, job), "the crawl has run")
    assert (pool.peak["a.example"], pool.peak["b.example"]) == (4, 1)
