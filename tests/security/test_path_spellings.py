"""A property over path spellings (issue 7, "Tests that must exist and pass").

For every route of the table and every method, spelled every way an attacker might (dot
segments, percent-encoding of any character, case, doubled and trailing slashes, `;params`,
backslashes, absolute-form with a foreign host), sent with team A's valid key while team B has a
crawl of its own:

1. the upstream only ever receives the exact canonical spelling of a table row, with a job id A
   owns (B's crawl appears only as creditgate's own status polls of it);
2. no answer to A carries B's job id;
3. every credit of work the upstream bills for A is charged to A, and B is charged only its own.

Findings: all of "Upstream internals are reachable", "Unmetered crawls", "Other teams' jobs"
(and "Team A is even charged B's running total"), at once and in combination.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer, team_with_key
from tests.security.raw import raw_request
from tests.security.support import (
    FORWARDED_KINDS,
    SPEC_ROUTES,
    SpecRoute,
    charged,
    fill,
    make_plan,
    settled,
    start_crawl,
)

METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH")
UNKNOWN_ID = "0f0e0d0c-0b0a-4998-8776-655443322110"
DOTS = ("/.", "/x/..", "/%2e", "/x/%2E%2e", "/..", "/%2e%2e", "/.%2e", "/..%2f", "/..;")
PARAMS = (";", ";x=1", ";jsessionid=1")
ABSOLUTE = ("http://evil.example", "http://evil.example:80", "HTTP://EVIL.EXAMPLE")
BACKSLASHES = ("\\", "%5c", "%5C")
MUTATIONS = ("dot", "encode", "case", "slash", "param", "absolute", "backslash")

Mutation = tuple[str, int, int]


def mutate(path: str, mutations: list[Mutation]) -> str:
    """Apply each (kind, position, variant) in turn; positions wrap around."""
    for kind, at, variant in mutations:
        slashes = [i for i, c in enumerate(path) if c == "/"] or [0]
        ends = [*slashes[1:], len(path)]
        if kind == "dot":
            i = ends[at % len(ends)]
            path = path[:i] + DOTS[variant % len(DOTS)] + path[i:]
        elif kind == "encode":
            i = at % len(path)
            code = f"%{ord(path[i]):02X}" if variant % 2 else f"%{ord(path[i]):02x}"
            path = path[:i] + code + path[i + 1 :]
        elif kind == "case":
            i = at % len(path)
            path = path.upper() if variant == 0 else path[:i] + path[i].swapcase() + path[i + 1 :]
        elif kind == "slash":
            i = slashes[at % len(slashes)]
            path = path + "/" if variant % 2 else path[:i] + "/" + path[i:]
        elif kind == "param":
            i = ends[at % len(ends)]
            path = path[:i] + PARAMS[variant % len(PARAMS)] + path[i:]
        elif kind == "absolute" and path.startswith("/"):
            path = ABSOLUTE[variant % len(ABSOLUTE)] + path
        elif kind == "backslash":
            i = slashes[at % len(slashes)]
            path = path[:i] + BACKSLASHES[variant % len(BACKSLASHES)] + path[i + 1 :]
    return path


def body_for(row: SpecRoute) -> dict[str, Any]:
    """A small, valid body for the row's product (one page, one result)."""
    bodies: dict[str, dict[str, Any]] = {
        "search": {"query": "q", "limit": 1},
        "crawl": {"url": "https://a.example", "limit": 1},
        "batch_scrape": {"urls": ["https://a.example/1"]},
        "extract": {"urls": ["https://a.example"], "prompt": "p"},
        "llmstxt": {"url": "https://a.example", "maxUrls": 1},
        "deep_research": {"query": "q", "maxUrls": 1},
    }
    return bodies.get(row.endpoint, {"url": "https://a.example"})


def ids_in(body: bytes) -> set[str]:
    """Job and scrape ids an answer gives its caller."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return set()
    found: set[str] = set()
    if isinstance(parsed, dict):
        if isinstance(parsed.get("id"), str):
            found.add(parsed["id"])
        data = parsed.get("data")
        metadata = data.get("metadata") if isinstance(data, dict) else None
        if isinstance(metadata, dict) and isinstance(metadata.get("scrapeId"), str):
            found.add(metadata["scrapeId"])
    return found


def test_no_spelling_of_any_route_reaches_outside_the_table_or_another_teams_job(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    roomy = make_plan(db, "roomy", 100_000, concurrency=100, scrape_rpm=100_000, crawl_rpm=100_000)
    team_a, key_a, _ = team_with_key(db, now(), plan=roomy)
    team_b, key_b, _ = team_with_key(db, now(), plan=roomy, name="other")
    b_job = start_crawl(gateway, key_b, {"url": "https://b.example", "limit": 4})
    a_job = start_crawl(gateway, key_a, {"url": "https://a.example", "limit": 4})
    a_ids = {a_job}  # grows with every job or scrape id an answer gives A
    b_polls = {("GET", f"/v1/crawl/{b_job}"), ("GET", f"/v2/crawl/{b_job}")}
    # Both crawls followed to their end first: from here on, only an example's own request
    # moves anything, so each example can be judged on its own.
    settled(db, team_a.id, team_b.id, timeout=30)

    def allowed() -> set[tuple[str, str]]:
        """Every (method, path) the upstream may receive: a forwarded row, spelled exactly,
        with one of A's own job ids; and creditgate's own polls of B's crawl."""
        out = set(b_polls)
        for row in SPEC_ROUTES:
            if row.kind in FORWARDED_KINDS:
                ids = a_ids if "{id}" in row.path else {""}
                out |= {(row.method, fill(row.path, i)) for i in ids}
        return out

    def billed_for_a() -> int:
        return sum(v for k, v in fake.state.billed.items() if k != b_job)

    setup_paths = len(fake.state.paths)

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        row=st.sampled_from(SPEC_ROUTES),
        whose=st.sampled_from(("A", "B", "unknown")),
        method=st.one_of(st.none(), st.sampled_from(METHODS)),
        mutations=st.lists(
            st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 1000), st.integers(0, 8)),
            max_size=3,
        ),
    )
    def spelled(row: SpecRoute, whose: str, method: str | None, mutations: list[Mutation]) -> None:
        job_id = {"A": a_job, "B": b_job, "unknown": UNKNOWN_ID}[whose]
        target = mutate(fill(row.path, job_id), mutations)
        verb = method or row.method
        body = json.dumps(body_for(row)).encode() if verb in ("POST", "PUT", "PATCH") else b""
        before = len(fake.state.paths)
        charged_before, billed_before = charged(db, team_a.id), billed_for_a()
        answer = raw_request(gateway.url, verb, target, {"Authorization": f"Bearer {key_a}"}, body)
        # 2. nothing of B's reaches A
        assert b_job not in answer.body.decode("latin-1"), (verb, target, answer)
        assert all(b_job not in v for v in answer.headers.values()), (verb, target, answer)
        a_ids.update(ids_in(answer.body) - {b_job})
        settled(db, team_a.id, team_b.id, timeout=30)
        # 1. the upstream received only canonical rows with A's ids (or polls of B's crawl)
        outside = [p for p in fake.state.paths[before:] if p not in allowed()]
        assert outside == [], (verb, target, answer.status)
        # 3. what the upstream billed for A's work is what A was charged
        assert charged(db, team_a.id) - charged_before == billed_for_a() - billed_before, (
            verb,
            target,
            answer.status,
        )

    spelled()
    settled(db, team_a.id, team_b.id, timeout=30)
    assert [p for p in fake.state.paths[setup_paths:] if p not in allowed()] == []
    assert httpx.get(f"{gateway.url}/v2/crawl/{b_job}", headers=bearer(key_a)).status_code == 404
    assert charged(db, team_a.id) == billed_for_a()
    assert charged(db, team_b.id) == fake.state.billed[b_job]
