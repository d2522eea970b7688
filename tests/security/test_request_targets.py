"""One spelling per request (issue 7, "What to build" 2): a request target that is not canonical
is a 400 before anything else happens, and nothing of it reaches the upstream.

Findings: "Upstream internals are reachable", "Unmetered crawls", "Other teams' jobs" (their
spellings; the canonical ones are in test_job_ownership.py). Each test sends the issue's exact
requests, byte for byte, with a raw socket: httpx would resolve the dot segments itself.
"""

from __future__ import annotations

import json

from creditgate.domain.instants import now
from creditgate.services import account, teams
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import team_with_key
from tests.security.raw import raw_request
from tests.security.support import (
    REFUSED,
    UNKNOWN,
    Outcome,
    attempt,
    crawl_body,
    open_holds,
    pause_follower,
    remaining,
    start_crawl,
)

# Firecrawl mounts its job-queue board under /admin/<key>/queues, and /test, /is-production,
# /serverHealthCheck and / beside /v1 and /v2: none of them is ever a client's business.
INTERNALS = (
    "/v1/../admin/KEY/queues",
    "/v1/%2e%2e/admin/KEY/queues",
    "/v1/%2E%2E/admin/KEY/queues",
    "/v2/.%2e/admin/KEY/queues",
    "/v2/..%2f..%2fadmin/KEY/queues",
    "/v2/..%2F..%2Fadmin/KEY/queues",
    "/v1%2F..%2Fadmin/KEY/queues",
    "/v1/scrape;/../../admin/KEY/queues",
    "http://evil.example/v1/../admin/X/queues",
    "/v1/..%5cadmin/KEY/queues",
    "/v1/..%5Cadmin/KEY/queues",
    "/v1\\..\\admin\\KEY\\queues",
    "/v1//../admin/KEY/queues",
    "/v1/../test",
    "/v1/../is-production",
    "/v2/../serverHealthCheck",
    "/v1/..",
    "/v2/./../",
)


def test_dot_segments_never_reach_the_upstream_admin_board(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Upstream internals are reachable": every spelling of a path outside /v1 and
    /v2 is a 400, with a key or without one (it is decided before authentication)."""
    _, key, _ = team_with_key(db, now())
    with_key = {target: attempt(gateway, fake, "GET", target, key)[0] for target in INTERNALS}
    without_key = {target: attempt(gateway, fake, "GET", target, None)[0] for target in INTERNALS}
    assert with_key == dict.fromkeys(INTERNALS, REFUSED)
    assert without_key == dict.fromkeys(INTERNALS, REFUSED)
    assert fake.state.paths == []


CRAWL_SPELLINGS = (
    ("POST", "/v2/x/../crawl"),
    ("POST", "/v2/./crawl"),
    ("POST", "/v2/crawl/"),
    ("POST", "/v2/batch/scrape/"),
    ("POST", "/v1/x/../crawl"),
    ("POST", "/v1/crawl/"),
    ("POST", "/v2/%2e/crawl"),
    ("POST", "/v2/crawl%2f"),
    ("POST", "/v2//crawl"),
    ("POST", "/v2/crawl;x=1"),
    ("POST", "/v2/crawl/."),
    ("POST", "/v2/crawl/x/.."),
    ("POST", "/v2/batch%2fscrape"),
)


def test_dot_segment_and_trailing_slash_spellings_never_start_an_unmetered_crawl(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Unmetered crawls": `POST /v2/x/../crawl`, `/v2/./crawl`, `/v2/crawl/`,
    `/v2/batch/scrape/` (and kin) are 400s; no job starts upstream and nothing is held."""
    team, key, _ = team_with_key(db, now())
    body = json.dumps(
        {"url": "https://site.example", "urls": ["https://site.example/a"], "limit": 2}
    ).encode()
    outcomes = {
        f"{method} {target}": attempt(gateway, fake, method, target, key, body)[0]
        for method, target in CRAWL_SPELLINGS
    }
    assert outcomes == {f"{m} {t}": REFUSED for m, t in CRAWL_SPELLINGS}
    assert fake.state.crawls == {}
    assert (remaining(db, team.id), open_holds(db, team.id)) == (3000, 0)


CASE_SPELLINGS = (
    ("POST", "/v2/CRAWL"),
    ("POST", "/v2/Crawl"),
    ("POST", "/V2/crawl"),
    ("POST", "/v1/CRAWL"),
    ("POST", "/v2/BATCH/SCRAPE"),
    ("POST", "/v2/batch/Scrape"),
    ("POST", "/v1/Extract"),
    ("POST", "/v1/LLMSTXT"),
)


def test_case_variants_of_a_route_are_not_found_and_start_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Unmetered crawls" (`POST /v2/CRAWL`): Express would start a crawl for it, so a
    canonical path that differs from a row only by case is a 404 and never forwarded."""
    team, key, _ = team_with_key(db, now())
    body = json.dumps(
        {"url": "https://site.example", "urls": ["https://site.example/a"], "limit": 2}
    ).encode()
    outcomes = {
        f"{method} {target}": attempt(gateway, fake, method, target, key, body)[0]
        for method, target in CASE_SPELLINGS
    }
    assert outcomes == {f"{m} {t}": UNKNOWN for m, t in CASE_SPELLINGS}
    assert fake.state.crawls == {}
    assert (remaining(db, team.id), open_holds(db, team.id)) == (3000, 0)


OTHER_TEAM_SPELLINGS = (
    ("GET", "/v2/crawl/x/../{B}"),
    ("GET", "/v2/crawl/{B}/"),
    ("GET", "/v2/crawl/./{B}/errors"),
    ("GET", "/v2/crawl/%2e/{B}"),
    ("GET", "/v2/crawl//{B}"),
    ("GET", "/v2/crawl/{B};x"),
    ("GET", "/v1/crawl/{B}/."),
    ("GET", "/v2/crawl%2f{B}"),
    ("DELETE", "/v2/crawl/x/../{B}"),
    ("DELETE", "/v2/crawl/{B}/"),
    ("DELETE", "/v1/crawl/./{B}"),
    ("GET", "/v2/crawl/./active"),
    ("GET", "/v2/crawl/%2e/ongoing"),
    ("GET", "/v1/crawl/active/"),
)


def test_another_teams_job_is_unreachable_through_any_spelling(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Other teams' jobs": team A reads B's crawl with `GET /v2/crawl/x/../<id>`,
    `/v2/crawl/<id>/`, `/v2/crawl/./<id>/errors`, cancels it with `DELETE /v2/crawl/x/../<id>`
    and lists every team's crawls with `GET /v2/crawl/./active`: all 400s, nothing forwarded,
    B's id in no answer, B's crawl still running, A charged nothing."""
    pause_follower(gateway)
    team_a, key_a, _ = team_with_key(db, now())
    _, key_b, _ = team_with_key(db, now(), name="other")
    b_job = start_crawl(gateway, key_b, {"url": "https://b.example", "limit": 4})
    seen: dict[str, Outcome] = {}
    leaked: list[str] = []
    for method, spelling in OTHER_TEAM_SPELLINGS:
        target = spelling.replace("{B}", b_job)
        outcome, answer = attempt(gateway, fake, method, target, key_a)
        seen[f"{method} {spelling}"] = outcome
        if b_job in answer.body.decode("latin-1") or any(
            b_job in v for v in answer.headers.values()
        ):
            leaked.append(f"{method} {spelling}")
    assert seen == {f"{m} {s}": REFUSED for m, s in OTHER_TEAM_SPELLINGS}
    assert leaked == []
    assert fake.state.crawls[b_job].status == "scraping"  # never cancelled by A
    assert (remaining(db, team_a.id), open_holds(db, team_a.id)) == (3000, 0)


CONTROL_SPELLINGS = (
    "/v2/crawl/%00",
    "/v2/crawl/a%00b",
    "/v2/crawl/%0a",
    "/v2/crawl/%0D%0A",
    "/v2/crawl/%7f",
    "/v2/crawl/%1b",
    "/v2/team/credit-usage%00",
)


def test_an_encoded_nul_or_control_byte_in_a_path_is_a_bad_request(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Other teams' jobs" (ids are looked up as given) and "a NUL byte anywhere ... is
    a 400 on PostgreSQL as on SQLite": a path whose decoded form holds a NUL or a control byte
    is refused before any lookup."""
    _, key, _ = team_with_key(db, now())
    outcomes = {t: attempt(gateway, fake, "GET", t, key)[0] for t in CONTROL_SPELLINGS}
    assert outcomes == dict.fromkeys(CONTROL_SPELLINGS, REFUSED)


def test_raw_control_bytes_in_a_target_never_reach_the_upstream(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """The same for raw bytes: the HTTP server refuses them before the application sees them
    (400), whatever the body says. Holds on today's code too: a guard against a server change."""
    _, key, _ = team_with_key(db, now())
    targets = (b"/v2/crawl/a\x00b", b"/v2/crawl/\x01", b"/v2/crawl/\x7f", b"/v2/crawl/a\tb")
    statuses = {
        target: raw_request(gateway.url, "GET", target, {"Authorization": f"Bearer {key}"}).status
        for target in targets
    }
    assert statuses == dict.fromkeys(targets, 400)
    assert fake.state.paths == []


def test_the_canonical_spelling_still_starts_a_held_crawl(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """The canonical crawl start still works: the rule refuses spellings, not crawls."""
    pause_follower(gateway)
    team, key, _ = team_with_key(db, now())
    outcome, answer = attempt(gateway, fake, "POST", "/v2/crawl", key, crawl_body(limit=2))
    assert (outcome.status, outcome.forwarded) == (200, (("POST", "/v2/crawl"),))
    assert answer.json()["url"].startswith(gateway.url)
    assert open_holds(db, team.id) == 1
    slots = account.queue_status(db, teams.get_team(db, team.id), now()).active
    assert slots == 2  # a slot for each of its two pages
