"""Every job has an owner (issue 7, "What to build" 3), and one route table is the truth (1).

Finding "Other teams' jobs", canonical spellings: every job read and cancel of every async
product checks the id against the team's own jobs; lists come from creditgate's records.
"""

from __future__ import annotations

import importlib
import uuid

import httpx

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer, team_with_key
from tests.security.support import (
    NO_SUCH_JOB,
    SPEC_ROUTES,
    Outcome,
    attempt,
    fill,
    open_holds,
    pause_follower,
    post,
    remaining,
    start_crawl,
)

KINDS = {"metered", "job_start", "job_read", "job_cancel", "list", "free", "account", "health"}


def test_the_route_table_is_exactly_spec_section_7() -> None:
    """ "One route table is the truth": `creditgate.domain.routes.ROUTES` holds exactly the rows
    of firecrawl-api.md §7, spelled as there, each with its kind (and, for metered routes and
    job starts, the activity name that prices it)."""
    module = importlib.import_module("creditgate.domain.routes")
    table = getattr(module, "ROUTES", None)
    kinds = getattr(module, "RouteKind", None)
    assert table is not None, "creditgate.domain.routes has no ROUTES table"
    assert kinds is not None, "creditgate.domain.routes has no RouteKind"
    assert {str(k) for k in kinds} == KINDS
    rows = [(r.method, r.path, str(r.kind)) for r in table]
    assert len(rows) == len(set(rows)), "a row appears twice"
    assert sorted(rows) == sorted((r.method, r.path, r.kind) for r in SPEC_ROUTES)
    priced = {
        (r.method, r.path): r.endpoint for r in table if str(r.kind) in ("metered", "job_start")
    }
    assert priced == {
        (r.method, r.path): r.endpoint for r in SPEC_ROUTES if r.kind in ("metered", "job_start")
    }


def test_routes_outside_the_table_are_not_found_and_never_forwarded(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """ "A request that matches no row is a 404 ... and is never forwarded": the v2 agent, the
    unknown routes the old gateway passed through, and Firecrawl's own internals under /v1."""
    _, key, _ = team_with_key(db, now())
    requests = (
        ("POST", "/v2/agent"),
        ("GET", f"/v2/agent/{uuid.uuid4()}"),
        ("GET", "/v2/stream"),
        ("POST", "/v2/something-new"),
        ("GET", "/v2/deep-thing/42"),
        ("GET", "/v1/admin/KEY/queues"),
        ("GET", "/v2/browser"),
        ("GET", "/v1/test"),
        ("GET", "/v2/health/liveness"),
        ("POST", "/v2/llmstxt"),
        ("POST", "/v2/deep-research"),
    )
    body = b'{"url": "https://site.example", "prompt": "p"}'
    seen = {f"{m} {t}": attempt(gateway, fake, m, t, key, body)[0] for m, t in requests}
    assert seen == {f"{m} {t}": Outcome(404, "Not Found", ()) for m, t in requests}


def test_a_route_called_with_another_method_is_refused_and_never_forwarded(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """A path of the table with a method the table does not give it matches no row: refused
    in the envelope (404 like Express, or 405), never forwarded."""
    _, key, _ = team_with_key(db, now())
    job = str(uuid.uuid4())
    requests = (
        ("GET", "/v2/scrape"),
        ("PUT", "/v2/scrape"),
        ("PATCH", "/v2/crawl"),
        ("GET", "/v2/crawl"),
        ("POST", f"/v2/crawl/{job}"),
        ("PUT", f"/v2/crawl/{job}"),
        ("DELETE", f"/v2/scrape/{job}"),
        ("DELETE", f"/v1/extract/{job}"),
        ("POST", "/v1/keyAuth"),
    )
    refusals = {(404, "Not Found"), (405, "Method Not Allowed")}
    wrong = {}
    for method, target in requests:
        outcome, _ = attempt(gateway, fake, method, target, key, b"{}")
        if (outcome.status, outcome.error) not in refusals or outcome.forwarded:
            wrong[f"{method} {target}"] = outcome
    assert wrong == {}


def _b_jobs(gateway: Gateway, key_b: str) -> dict[str, str]:
    """Team B starts one job of every async product; its ids by product. Each takes one of
    its plan's five page slots (maxConcurrency 1), so all five run at once."""
    scraped = post(gateway, key_b, "/v2/scrape", {"url": "https://b.example/page"})
    assert scraped.status_code == 200, scraped.text
    ids = {"scrape": scraped.json()["data"]["metadata"]["scrapeId"]}
    one = {"maxConcurrency": 1}
    ids["crawl"] = start_crawl(gateway, key_b, {"url": "https://b.example", "limit": 4, **one})
    ids["batch"] = start_crawl(
        gateway,
        key_b,
        {"urls": ["https://b.example/1", "https://b.example/2"], **one},
        "/v2/batch/scrape",
    )
    for product, path, body in (
        ("extract", "/v2/extract", {"urls": ["https://b.example"], "prompt": "p"}),
        ("llmstxt", "/v1/llmstxt", {"url": "https://b.example"}),
        ("deep-research", "/v1/deep-research", {"query": "b"}),
    ):
        started = post(gateway, key_b, path, body)
        assert started.status_code == 200, started.text
        ids[product] = started.json()["id"]
    return ids


def _product(path: str) -> str:
    for product in ("batch", "crawl", "scrape", "extract", "llmstxt", "deep-research"):
        if f"/{product}/" in path:
            return product
    return "crawl"  # /v1/checkJobStatus/{id}: any job


def test_another_teams_jobs_are_not_found_on_every_job_route(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "Other teams' jobs" and "every job has an owner": for every job read and cancel
    of the table (crawl, batch scrape, scrape, extract, llmstxt, deep research, checkJobStatus),
    team A asking for team B's job, or for an id nobody started, gets 404 `Job not found` and
    nothing is forwarded."""
    pause_follower(gateway)
    team_a, key_a, _ = team_with_key(db, now())
    _, key_b, _ = team_with_key(db, now(), name="other")
    b_ids = _b_jobs(gateway, key_b)
    rows = [r for r in SPEC_ROUTES if r.kind in ("job_read", "job_cancel")]
    seen: dict[str, Outcome] = {}
    leaked: list[str] = []
    for row in rows:
        for whose, job_id in (("B's", b_ids[_product(row.path)]), ("unknown", str(uuid.uuid4()))):
            outcome, answer = attempt(gateway, fake, row.method, fill(row.path, job_id), key_a)
            seen[f"{row.method} {row.path} with {whose} id"] = outcome
            if whose == "B's" and any(i in answer.body.decode("latin-1") for i in b_ids.values()):
                leaked.append(f"{row.method} {row.path}")
    assert seen == dict.fromkeys(seen, NO_SUCH_JOB)
    assert leaked == []
    assert all(fake.state.crawls[b_ids[p]].status == "scraping" for p in ("crawl", "batch"))
    assert (remaining(db, team_a.id), open_holds(db, team_a.id)) == (3000, 0)


def test_job_lists_show_only_the_callers_own_crawls_from_creditgates_records(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    """Finding "lists every team's crawls": `GET /{v}/crawl/active` and `/{v}/crawl/ongoing`
    list the caller's own running crawls (the upstream is shared and lists everyone's); the
    lists are answered from creditgate's records, not forwarded."""
    pause_follower(gateway)
    _, key_a, _ = team_with_key(db, now())
    _, key_b, _ = team_with_key(db, now(), name="other")
    a_job = start_crawl(gateway, key_a, {"url": "https://a.example", "limit": 4})
    b_job = start_crawl(gateway, key_b, {"url": "https://b.example", "limit": 4})
    before = len(fake.state.paths)
    listed: dict[str, object] = {}
    for path in ("/v1/crawl/active", "/v1/crawl/ongoing", "/v2/crawl/active", "/v2/crawl/ongoing"):
        answer = httpx.get(f"{gateway.url}{path}", headers=bearer(key_a))
        assert b_job not in answer.text, path
        listed[path] = (
            answer.status_code,
            [c["id"] for c in answer.json().get("crawls", [])]
            if answer.status_code == 200
            else answer.text,
        )
    assert listed == dict.fromkeys(listed, (200, [a_job]))
    assert fake.state.paths[before:] == []
