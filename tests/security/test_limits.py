"""Validate before holding (issue 7, "What to build" 4).

Findings: "Overdraft by limit" (`"limit": 1e12`, `"100000"`, 10^29 held at the default, forwarded
unchanged, settled at whatever the upstream reports) and "a crawl without a `limit` holds every
remaining credit for its whole life: every other key of the team gets 402 until it ends".
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from creditgate.domain.instants import now
from creditgate.gateway.proxy import STATUS_RPM_MIN
from creditgate.services import keys
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway, early_in_a_minute
from tests.helpers import bearer, charge, team_with_key
from tests.security.raw import raw_request
from tests.security.support import (
    BAD_REQUEST,
    charged,
    make_plan,
    open_holds,
    pause_follower,
    remaining,
    settled,
    start_crawl,
    wait_until,
)

BAD_LIMITS = (
    "1e12",
    '"100000"',
    str(10**29),
    "-1",
    "true",
    "1.5",
    "10000001",
    "[4]",
    '{"n": 4}',
)


def _refused_before_holding(
    db: Database, fake: Fake, gateway: Gateway, key: str, team_id: str, path: str, body: bytes
) -> str | None:
    """None if the request was a 400 "Bad Request" with details, nothing held or forwarded;
    else what happened instead."""
    before = len(fake.state.paths)
    answer = raw_request(gateway.url, "POST", path, {"Authorization": f"Bearer {key}"}, body)
    try:
        parsed = answer.json()
    except ValueError:
        parsed = None
    envelope = (
        isinstance(parsed, dict)
        and parsed.get("success") is False
        and parsed.get("error") == BAD_REQUEST
        and isinstance(parsed.get("details"), list)
    )
    forwarded = fake.state.paths[before:]
    balance = (remaining(db, team_id), open_holds(db, team_id))
    if answer.status == 400 and envelope and not forwarded and balance == (3000, 0):
        return None
    return f"{answer.status} {answer.body[:120]!r} forwarded={forwarded} balance={balance}"


def test_a_crawl_limit_out_of_bounds_is_refused_before_anything_is_held(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Overdraft by limit": `limit` must be a JSON integer (not a bool, float or
    string) from 1 to 10,000,000; anything else is 400 "Bad Request" with `details`, nothing
    held, nothing forwarded."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now())
    wrong = {}
    for path in ("/v2/crawl", "/v1/crawl"):
        for limit in BAD_LIMITS:
            body = b'{"url": "https://site.example", "limit": ' + limit.encode() + b"}"
            problem = _refused_before_holding(db, fake, gateway, key, team.id, path, body)
            if problem is not None:
                wrong[f"{path} limit={limit}"] = problem
    assert wrong == {}
    assert fake.state.crawls == {}


def test_a_batch_needs_a_non_empty_list_of_url_strings_before_anything_is_held(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Overdraft by limit" (a batch's `urls` are counted): no list, an empty list, or
    anything but strings in it is 400 "Bad Request" before a hold or an upstream call."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now())
    bodies: tuple[dict[str, object], ...] = (
        {},
        {"urls": []},
        {"urls": "https://site.example"},
        {"urls": [1, 2]},
        {"urls": [None]},
        {"urls": [["https://site.example"]]},
        {"urls": {"0": "https://site.example"}},
    )
    wrong = {}
    for path in ("/v2/batch/scrape", "/v1/batch/scrape"):
        for body in bodies:
            problem = _refused_before_holding(
                db, fake, gateway, key, team.id, path, json.dumps(body).encode()
            )
            if problem is not None:
                wrong[f"{path} {json.dumps(body)}"] = problem
    assert wrong == {}


def test_a_batch_is_held_at_its_url_count_times_the_page_price(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """A batch of three json-format pages holds 3 x 5 credits right after its start."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now())
    start_crawl(
        gateway,
        key,
        {"urls": [f"https://site.example/{i}" for i in range(3)], "formats": [{"type": "json"}]},
        "/v2/batch/scrape",
    )
    assert remaining(db, team.id) == 3000 - 15


def test_nested_scrape_formats_are_priced_in_a_crawls_hold(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "nested `scrapeOptions` formats are priced": a crawl of `"limit": 3` whose pages
    are scraped with the json format (5 credits each) holds 15 credits, not 3."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now())
    start_crawl(
        gateway,
        key,
        {
            "url": "https://site.example",
            "limit": 3,
            "scrapeOptions": {"formats": [{"type": "json"}]},
        },
    )
    assert remaining(db, team.id) == 3000 - 15


def test_a_crawl_without_a_limit_does_not_lock_the_teams_other_keys_out(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "a crawl without a limit holds every remaining credit for its whole life": while
    it runs the team keeps most of its credits and another key can scrape; at its end it is
    charged exactly what the upstream reports (40 pages)."""
    fake.state.pages_per_poll = 5
    team, key, _ = team_with_key(db, now())
    other = keys.create_key(db, team.id, now(), name="other").secret
    job_id = start_crawl(gateway, key, {"url": "https://site.example"})  # the SDK's default
    assert remaining(db, team.id) > 1500, "the crawl holds most of the team's credits"
    scraped = httpx.post(
        f"{gateway.url}/v2/scrape",
        json={"url": "https://example.com"},
        headers=bearer(other),
        timeout=15,
    )
    assert scraped.status_code == 200, scraped.text
    assert remaining(db, team.id) > 1500
    settled(db, team.id, timeout=60)
    assert fake.state.crawls[job_id].completed == fake.state.unlimited_total
    assert charged(db, team.id) == fake.state.billed[job_id] + 1 == 40 + 1
    assert remaining(db, team.id) == 3000 - 41


def test_a_crawl_without_a_limit_is_cancelled_upstream_when_the_team_cannot_pay_for_more(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "a crawl without a limit" (no overdraft and no starvation both hold): a team of
    40 credits without overage starts a crawl of a 40-page site with no limit, and its other
    key spends most of the rest meanwhile; creditgate cancels the crawl upstream when the team
    cannot pay for more pages, charges what the upstream reports, and the team never goes
    below zero."""
    gateway.ctx.follow_seconds = 0.3
    team, key, _ = team_with_key(db, now(), plan=make_plan(db, "forty", 40))
    other = keys.create_key(db, team.id, now(), name="other").secret
    # Two of the plan's five page slots: the other key scrapes in the rest meanwhile.
    job_id = start_crawl(gateway, key, {"url": "https://site.example", "maxConcurrency": 2})
    assert fake.state.crawls[job_id].total == 40  # forwarded with what the team can pay: 40
    lowest = [remaining(db, team.id)]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            lowest.append(remaining(db, team.id))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        spent = 0
        for n in range(25):  # the other key takes what the crawl does not hold
            answer = httpx.post(
                f"{gateway.url}/v2/scrape",
                json={"url": f"https://example.com/{n}"},
                headers=bearer(other),
                timeout=15,
            )
            spent += answer.status_code == 200
        wait_until(
            lambda: any(
                method == "DELETE" and path == f"/v2/crawl/{job_id}"
                for method, path in fake.state.paths
            ),
            "creditgate cancels the crawl upstream",
            timeout=30,
        )
        settled(db, team.id, timeout=30)
    finally:
        stop.set()
        watcher.join()
    crawl = fake.state.crawls[job_id]
    assert crawl.status == "cancelled" and crawl.completed < 40
    assert spent >= 10  # the crawl did not lock the other key out
    assert charged(db, team.id) == fake.state.billed[job_id] + spent <= 40
    assert min(lowest) >= 0
    assert remaining(db, team.id) == 40 - charged(db, team.id) >= 0


def test_a_crawl_without_a_limit_is_forwarded_with_what_the_team_can_pay_for(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """As the live API lowers a limit the team cannot pay for: a team of 10 credits crawling a
    40-page site without a limit has the crawl forwarded with `limit: 10`, and pays 10."""
    team, key, _ = team_with_key(db, now(), plan=make_plan(db, "ten", 10))
    job_id = start_crawl(gateway, key, {"url": "https://site.example"})
    assert fake.state.requests[-1][2]["limit"] == 10
    settled(db, team.id, timeout=30)
    assert fake.state.crawls[job_id].completed == 10
    assert remaining(db, team.id) == 0


def test_reading_a_crawl_through_the_other_version_settles_it_and_cannot_overdraw(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Found by an outside tester: a v2 crawl read through /v1/crawl/<id> was neither settled
    nor had its links rewritten, so a team of 30 credits whose other key spent 20 ran the crawl
    to 30 pages and ended at -20. Every status read of the job now settles it, under either
    version, and a hold that cannot grow cancels the crawl in time."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now(), plan=make_plan(db, "thirty", 30))
    other = keys.create_key(db, team.id, now(), name="other")
    job_id = start_crawl(gateway, key, {"url": "https://site.example"})
    charge(db, other.secret, 20, now())  # the other key spends what the crawl does not hold
    nexts = []
    for _ in range(30):
        read = httpx.get(f"{gateway.url}/v1/crawl/{job_id}", headers=bearer(key), timeout=10)
        assert read.status_code == 200
        nexts.append(read.json()["next"])
        assert remaining(db, team.id) >= 0
    assert fake.state.crawls[job_id].status == "cancelled"
    assert ("DELETE", f"/v2/crawl/{job_id}") in fake.state.paths
    assert all(n is None or n.startswith(gateway.url) for n in nexts), nexts
    settled(db, team.id)
    assert charged(db, team.id) == 20 + fake.state.billed[job_id] <= 30


def test_job_reads_are_rate_limited_apart_from_the_work(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Found by an outside tester: 300 reads of one crawl a minute all reached the shared
    upstream. Reads and cancels get their own window: five times the plan's scrape rate, and
    never fewer than STATUS_RPM_MIN, so that an SDK polling every second is not refused (found
    in front of the real Firecrawl: the free plan's 50 a minute refused the v2 SDK's `crawl()`
    with poll_interval=1)."""
    early_in_a_minute()
    _, key, _ = team_with_key(db, now(), plan=make_plan(db, "fast", 1000, scrape_rpm=100))
    _, slow, _ = team_with_key(
        db, now(), plan=make_plan(db, "slow", 1000, scrape_rpm=2), name="slow"
    )
    with httpx.Client(headers=bearer(key)) as client:
        job_id = start_crawl(gateway, key, {"url": "https://site.example", "limit": 2})
        statuses = [client.get(f"{gateway.url}/v2/crawl/{job_id}").status_code for _ in range(501)]
    assert STATUS_RPM_MIN == 300 and statuses == [200] * 500 + [429]  # 5 x 100
    with httpx.Client(headers=bearer(slow)) as client:
        job_id = start_crawl(gateway, slow, {"url": "https://site.example", "limit": 2})
        statuses = [client.get(f"{gateway.url}/v2/crawl/{job_id}").status_code for _ in range(301)]
    assert statuses == [200] * STATUS_RPM_MIN + [429]
    # Found by an outside tester: the cancel shared that window, so a client that had polled
    # too fast could not stop its own crawl for up to a minute. Cancels have their own.
    cancel = httpx.delete(f"{gateway.url}/v2/crawl/{job_id}", headers=bearer(slow))
    # it reaches the upstream: cancelled, or (the fake's crawl advanced with every read) done
    assert (cancel.status_code, cancel.json().get("status")) in ((200, "cancelled"), (409, None))
    assert fake.state.requests[-1][:2] == ("DELETE", f"/v2/crawl/{job_id}")


@pytest.mark.parametrize(
    ("how", "credits", "spent"), [("revoked", 30, 15), ("rotated out", 1000, 0)]
)
def test_a_crawl_without_a_limit_stops_growing_when_its_key_is_revoked_or_rotated_out(
    db: Database, fake: Fake, gateway: Gateway, how: str, credits: int, spent: int
) -> None:
    """Findings (second outside test): revoking the key behind a crawl without a limit made
    every extension of its hold fail as an error ("API key ... is revoked"), so the crawl was
    never cancelled and ran to its forwarded limit: a 30-credit team without overage ended at
    -15. A key rotated out (overlap 0) still grew its crawl's hold, though the README says it
    cannot past the old key's expiry. Now a revoked or expired key's hold cannot grow, and the
    crawl is cancelled upstream with half a step left, as when the team cannot pay: it never
    goes below zero."""
    team, key, key_id = team_with_key(db, now(), plan=make_plan(db, f"p{credits}", credits))
    other = keys.create_key(db, team.id, now(), name="other")
    job_id = start_crawl(gateway, key, {"url": "https://site.example"})
    if spent:
        charge(db, other.secret, spent, now())
    if how == "revoked":
        keys.revoke_key(db, key_id, now())
    else:
        keys.rotate_key(db, key_id, now(), overlap_seconds=0)
    wait_until(
        lambda: ("DELETE", f"/v2/crawl/{job_id}") in fake.state.paths,
        "creditgate cancels the crawl upstream",
        timeout=30,
    )
    settled(db, team.id, timeout=30)
    assert fake.state.crawls[job_id].completed < 20  # a first step of 10 pages, then cancelled
    assert charged(db, team.id) == fake.state.billed[job_id] + spent <= credits
    assert remaining(db, team.id) == credits - charged(db, team.id) >= 0
