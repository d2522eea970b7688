"""More of the official SDKs' operations through creditgate in front of the real Firecrawl: a
json scrape (no LLM configured), a search (the stand-in answers SearXNG's API), a crawl
cancelled mid-way, creditgate killed with SIGKILL mid-crawl and restarted, and the official JS
SDK. Each charge must equal Firecrawl's own figure, and `creditgate verify` must find the ledger
consistent after each test (conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from firecrawl import Firecrawl

from creditgate.domain.instants import now
from creditgate.services import account, teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.helpers import team_with_key
from tests.security.support import charged, open_holds, settled, wait_until
from tests.server import free_port, start, stop
from tests.upstream import firecrawl as fc
from tests.upstream.conftest import UPSTREAM_KEY, Gateway, peak_in_flight, standin_pages

V1_SDK = pytest.mark.filterwarnings("ignore:The `dict` method is deprecated")


def straight(upstream: fc.Firecrawl, path: str) -> dict[str, Any]:
    """A job's status read from Firecrawl itself, not through creditgate."""
    answer = httpx.get(f"{upstream.url}{path}", timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ended(upstream: fc.Firecrawl, path: str) -> dict[str, Any]:
    """A cancelled job's status once every page it found has ended upstream (total ==
    completed: this build takes a page that fails, as a cancelled crawl's queued pages do, out
    of `total`); its `creditsUsed` is final then."""
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        last = straight(upstream, path)
        return bool(last["status"] == "cancelled" and last["total"] == last["completed"])

    wait_until(done, f"every page of {path} ended upstream", 60)
    return last


def client(db: Database, url: str, plan: str = "hobby") -> tuple[str, str, Firecrawl]:
    team, key, _ = team_with_key(db, now(), plan=plan)
    return team.id, key, Firecrawl(api_key=key, api_url=url)


def test_a_json_scrape_is_charged_what_firecrawl_reports(db: Database, gateway: Gateway) -> None:
    """No LLM is configured: Firecrawl's json result is null, and it still bills 5."""
    team, _, sdk = client(db, gateway.url)
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    doc = sdk.scrape(
        f"{gateway.upstream.site}/page1.html", formats=[{"type": "json", "schema": schema}]
    )
    assert doc.json is None
    assert doc.metadata is not None and doc.metadata.credits_used == 5
    settled(db, team)
    assert charged(db, team) == doc.metadata.credits_used


def test_a_search_is_charged_what_firecrawl_reports(db: Database, gateway: Gateway) -> None:
    """A credit a result on this build: the same search straight to Firecrawl reports it."""
    team, _, sdk = client(db, gateway.url)
    found = sdk.search("loopback test page", limit=3)
    assert found.web is not None and len(found.web) == 3
    settled(db, team)
    same = httpx.post(
        f"{gateway.upstream.url}/v2/search", json={"query": "loopback test page", "limit": 3},
        timeout=60,
    ).json()  # fmt: skip
    assert charged(db, team) == same["creditsUsed"] == 3


@V1_SDK
def test_a_cancelled_crawl_is_charged_firecrawls_final_figure_and_gives_its_slots_back(
    db: Database, gateway: Gateway
) -> None:
    """A free team's crawl of the slow pages, cancelled after its first page: charged what
    Firecrawl reports once every page it had found has ended, nothing left held, both slots
    back. The page grace is set to ten minutes here: the slots come back when the upstream says
    its pages have ended (issue 18, item 4), long before; a second crawl then gets both."""
    gateway.ctx.page_grace_seconds = 600.0
    team, _, sdk = client(db, gateway.url, plan="free")
    started = sdk.v1.async_crawl_url(
        f"{gateway.upstream.site}/slow/index.html", limit=12, allow_backward_links=True
    )
    path = f"/v1/crawl/{started.id}"
    wait_until(lambda: straight(gateway.upstream, path)["completed"] >= 1, "a page done", 60)
    assert sdk.cancel_crawl(started.id) is True
    assert sdk.get_concurrency().concurrency == 2  # its pages may still run: the slots stay
    final = ended(gateway.upstream, path)
    settled(db, team, timeout=60)  # well before the ten-minute grace
    assert 1 <= final["completed"] < 12
    assert charged(db, team) == final["creditsUsed"] == final["completed"]
    assert open_holds(db, team) == 0
    assert sdk.get_concurrency().concurrency == 0
    assert sdk.get_credit_usage().remaining_credits == 500 - final["creditsUsed"]

    since = time.time()  # the slots are back: a second crawl runs on both
    second = sdk.v1.async_crawl_url(
        f"{gateway.upstream.site}/slow/index.html", limit=4, allow_backward_links=True
    )
    settled(db, team, timeout=90)
    again = straight(gateway.upstream, f"/v1/crawl/{second.id}")
    assert (again["status"], again["completed"]) == ("completed", 4)
    assert charged(db, team) == final["creditsUsed"] + again["creditsUsed"]
    pages = [p for p in standin_pages(gateway.upstream.standin_log(), since) if "/slow/" in p[2]]
    assert peak_in_flight(pages) == 2, pages


@V1_SDK
def test_a_crawl_is_settled_once_when_creditgate_is_killed_mid_crawl(
    db: Database, database_url: str, firecrawl: fc.Firecrawl
) -> None:
    """`creditgate serve` as a real process, killed with SIGKILL while its crawl runs, then
    started again: the new process follows the crawl to its end and charges Firecrawl's figure,
    each credit once."""
    env = {
        "CREDITGATE_UPSTREAM_URL": firecrawl.url,
        "CREDITGATE_UPSTREAM_KEY": UPSTREAM_KEY,
        "CREDITGATE_FOLLOW_SECONDS": "0.3",
    }
    server = start(database_url, ADMIN_TOKEN, free_port(), extra_env=env)
    killed = False
    try:
        team, _, sdk = client(db, server.url, plan="free")
        started = sdk.v1.async_crawl_url(
            f"{firecrawl.site}/slow/index.html", limit=8, allow_backward_links=True
        )
        path = f"/v1/crawl/{started.id}"
        wait_until(lambda: charged(db, team) >= 2, "creditgate charged two pages", 60)
        assert straight(firecrawl, path)["status"] == "scraping"  # killed mid-crawl
        os.kill(server.process.pid, signal.SIGKILL)
        killed = server.process.wait(timeout=10) == -signal.SIGKILL
        assert killed
    finally:
        if not killed:
            stop(server)
    # the crawl keeps its hold and both slots past the process
    assert open_holds(db, team) == 1
    assert account.queue_status(db, teams.get_team(db, team), now()).active == 2
    server = start(database_url, ADMIN_TOKEN, free_port(), extra_env=env)
    try:
        settled(db, team, timeout=90)
    finally:
        stop(server)
    upstream = straight(firecrawl, path)
    assert (upstream["status"], upstream["completed"]) == ("completed", 8)
    assert charged(db, team) == upstream["creditsUsed"] == 8


@pytest.fixture
def js_sdk() -> str:
    try:
        return str(fc.js_sdk())
    except fc.Unavailable as exc:
        if IN_CI:
            pytest.fail(f"the JS SDK is required under CI=true: {exc}", pytrace=False)
        pytest.skip(f"the JS SDK cannot be installed: {exc}")


def test_the_js_sdk_is_charged_firecrawls_figures(
    db: Database, gateway: Gateway, js_sdk: str
) -> None:
    """@mendable/firecrawl-js (pinned, installed in the cache) through creditgate: a scrape, a
    v1 crawl and a batch scrape, each charged what Firecrawl reports."""
    team, key, _ = client(db, gateway.url)
    script = os.path.join(os.path.dirname(__file__), "js", "drive.mjs")
    done = subprocess.run(
        ["node", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CG_URL": gateway.url, "CG_KEY": key,
             "CG_SITE": gateway.upstream.site, "CG_SDK_DIR": js_sdk},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["scrape"]["creditsUsed"] == 1 and "Test page 5" in out["scrape"]["markdown"]
    settled(db, team, timeout=90)
    crawl = straight(gateway.upstream, f"/v1/crawl/{out['crawl']['id']}")
    batch = straight(gateway.upstream, f"/v2/batch/scrape/{out['batch']['id']}")
    assert (crawl["status"], crawl["completed"], batch["status"], batch["completed"]) == (
        "completed", 3, "completed", 2,
    )  # fmt: skip
    assert charged(db, team) == 1 + crawl["creditsUsed"] + batch["creditsUsed"] == 1 + 3 + 2
