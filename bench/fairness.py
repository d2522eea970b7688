"""`python -m bench.fairness`: how much a free team's crawls slow a paying team's scrapes.

One upstream (the fake Firecrawl with a pool of WORKERS workers, each page PAGE_SECONDS) is
shared by a free team (concurrency 2) and a paying team (concurrency WORKERS - 2). The paying
team scrapes from SCRAPERS threads, first alone, then while the free team starts two uncapped
crawls of CRAWL_PAGES pages; both through the gateway (one `creditgate serve`, SQLite) and, as the
baseline, straight to the upstream, where nothing counts pages. Prints the paying team's scrape
latency (p50, p99) in each case, and the peak of each team's pages in flight upstream.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.server import free_port, start, stop

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import keys, plans, teams
from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade

ROOT = Path(__file__).parent.parent
ADMIN = "bench-admin-token-16"
WORKERS = 8
PAGE_SECONDS = 0.05
SCRAPERS = 4
CRAWL_PAGES = 200  # each of the free team's two crawls: 400 of its 500 credits


def _fake(port: int) -> subprocess.Popen[bytes]:
    """A fresh fake upstream (and so a fresh pool record), once it answers."""
    env = {
        **os.environ,
        "FAKE_FIRECRAWL_WORKERS": str(WORKERS),
        "FAKE_FIRECRAWL_PAGE_SECONDS": str(PAGE_SECONDS),
        "FAKE_FIRECRAWL_SITE_PAGES": str(CRAWL_PAGES),
    }
    command = [sys.executable, "-m", "uvicorn", "tests.gateway.fake_firecrawl:app"]
    options = ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen([*command, *options], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_fake/pool", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the fake upstream did not start")


def _scrapes(url: str, key: str, each: int, latencies: list[float]) -> None:
    with httpx.Client(timeout=60) as client:
        for i in range(each):
            started = time.perf_counter()
            answer = client.post(
                f"{url}/v2/scrape",
                json={"url": f"https://paying.example/{i}"},
                headers={"Authorization": f"Bearer {key}"},
            )
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise SystemExit(f"a paying scrape failed: {answer.status_code} {answer.text}")


def _crawls(url: str, key: str) -> list[threading.Thread]:
    def crawl() -> None:
        httpx.post(
            f"{url}/v2/crawl",
            json={"url": "https://free.example", "limit": CRAWL_PAGES},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    threads = [threading.Thread(target=crawl) for _ in range(2)]
    for t in threads:
        t.start()
    return threads


def _round(url: str, keys_: tuple[str, str], each: int, with_crawls: bool) -> list[float]:
    free_key, paying_key = keys_
    latencies: list[float] = []
    crawlers = _crawls(url, free_key) if with_crawls else []
    if with_crawls:
        time.sleep(0.2)  # the crawls are running
    scrapers = [
        threading.Thread(target=_scrapes, args=(url, paying_key, each, latencies))
        for _ in range(SCRAPERS)
    ]
    for t in scrapers:
        t.start()
    for t in [*scrapers, *crawlers]:
        t.join()
    return latencies


def _figures(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}


def _settle(fake_url: str) -> dict[str, Any]:
    """Wait until the upstream is idle; its pool's record."""
    deadline = time.monotonic() + 120
    while True:
        pool: dict[str, Any] = httpx.get(f"{fake_url}/_fake/pool").json()
        if not any(pool["busy"].values()) or time.monotonic() > deadline:
            return pool
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness")
    parser.add_argument("--scrapes", type=int, default=20, help="per scraping thread")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="creditgate-fairness-")
    db = Database(f"sqlite:///{tmp}/gateway.db")
    upgrade(db)
    plans.create_plan(db, Plan("paying", 10**9, "month", WORKERS - 2, 10**6, 10**6), now())
    free_team = teams.create_team(db, "free", now(), plan_id="free")
    paying_team = teams.create_team(db, "paying", now(), plan_id="paying")
    pair = (
        keys.create_key(db, free_team.id, now()).secret,
        keys.create_key(db, paying_team.id, now()).secret,
    )
    fake_port = free_port()
    fake = _fake(fake_port)
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {"CREDITGATE_UPSTREAM_URL": fake_url, "CREDITGATE_FOLLOW_SECONDS": "0.2"}
    gateway = start(db.url, ADMIN, free_port(), extra_env=env)
    try:
        rows = []
        for where, url in (("through the gateway", gateway.url), ("straight upstream", fake_url)):
            alone = _figures(_round(url, pair, args.scrapes, with_crawls=False))
            _settle(fake_url)
            shared = _figures(_round(url, pair, args.scrapes, with_crawls=True))
            pool = _settle(fake_url)
            rows.append((where, alone, shared, pool["peak"]))
            fake.terminate()  # a fresh upstream (and pool record) for the next case
            fake.wait()
            fake = _fake(fake_port)
    finally:
        stop(gateway)
        fake.terminate()
        fake.wait()
        db.dispose()
    print(f"upstream: {WORKERS} workers, {PAGE_SECONDS * 1000:.0f} ms a page; paying team:")
    print(f"{SCRAPERS} threads x {args.scrapes} scrapes; free team: 2 uncapped crawls of")
    print(f"{CRAWL_PAGES} pages each")
    for where, alone, shared, peak in rows:
        print(
            f"{where:<20} paying scrape p50/p99 alone"
            f" {alone['p50_ms']:.0f}/{alone['p99_ms']:.0f} ms,"
            f" beside the free crawls {shared['p50_ms']:.0f}/{shared['p99_ms']:.0f} ms;"
            f" peak pages in flight: free {peak.get('free.example', 0)},"
            f" paying {peak.get('paying.example', 0)}"
        )


if __name__ == "__main__":
    main()
