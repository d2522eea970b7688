"""What the security tests share: spec §7 as data, balances, waiting, and small request helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import account, plans, teams
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer
from tests.security.raw import RawAnswer, raw_request

BAD_REQUEST = "Bad Request"
NOT_FOUND = "Not Found"
JOB_NOT_FOUND = "Job not found"
INVALID_TOKEN = "Unauthorized: Invalid token"


@dataclass(frozen=True)
class SpecRoute:
    method: str
    path: str  # the exact spelling of spec §7, `{id}` for a job id
    kind: str
    endpoint: str  # the activity name for metered routes and job starts, else ""


def _rows(kind: str, method: str, endpoint: str, *paths: str) -> list[SpecRoute]:
    return [SpecRoute(method, path, kind, endpoint) for path in paths]


ACCOUNT_PATHS = (
    "/team/credit-usage",
    "/team/token-usage",
    "/team/credit-usage/historical",
    "/team/token-usage/historical",
    "/team/queue-status",
    "/concurrency-check",
)

# firecrawl-api.md §7, row by row (the v2 agent is not in it).
SPEC_ROUTES: tuple[SpecRoute, ...] = tuple(
    [
        *_rows("metered", "POST", "scrape", "/v1/scrape", "/v2/scrape"),
        *_rows("metered", "POST", "map", "/v1/map", "/v2/map"),
        *_rows("metered", "POST", "search", "/v1/search", "/v1/x402/search", "/v2/search"),
        *_rows("job_start", "POST", "crawl", "/v1/crawl", "/v2/crawl"),
        *_rows("job_start", "POST", "batch_scrape", "/v1/batch/scrape", "/v2/batch/scrape"),
        *_rows("job_start", "POST", "extract", "/v1/extract", "/v2/extract"),
        *_rows("job_start", "POST", "llmstxt", "/v1/llmstxt"),
        *_rows("job_start", "POST", "deep_research", "/v1/deep-research"),
        *_rows(
            "job_read",
            "GET",
            "",
            "/v1/crawl/{id}",
            "/v1/crawl/{id}/errors",
            "/v1/batch/scrape/{id}",
            "/v1/batch/scrape/{id}/errors",
            "/v1/scrape/{id}",
            "/v1/extract/{id}",
            "/v1/llmstxt/{id}",
            "/v1/deep-research/{id}",
            "/v1/checkJobStatus/{id}",
            "/v2/crawl/{id}",
            "/v2/crawl/{id}/errors",
            "/v2/batch/scrape/{id}",
            "/v2/scrape/{id}",
            "/v2/extract/{id}",
        ),
        *_rows(
            "job_cancel",
            "DELETE",
            "",
            "/v1/crawl/{id}",
            "/v1/batch/scrape/{id}",
            "/v2/crawl/{id}",
            "/v2/batch/scrape/{id}",
        ),
        *_rows(
            "list",
            "GET",
            "",
            "/v1/crawl/active",
            "/v1/crawl/ongoing",
            "/v2/crawl/active",
            "/v2/crawl/ongoing",
        ),
        *_rows("free", "POST", "", "/v1/crawlWebsitePreview", "/v2/crawl/params-preview"),
        *_rows("free", "GET", "", "/v1/keyAuth"),
        *_rows("account", "GET", "", *(f"/{v}{p}" for v in ("v1", "v2") for p in ACCOUNT_PATHS)),
        *_rows("account", "GET", "", "/v2/team/activity"),
        *_rows("health", "GET", "", "/v1/health/liveness", "/v1/health/readiness"),
    ]
)
FORWARDED_KINDS = ("metered", "job_start", "job_read", "job_cancel", "free")


def fill(path: str, job_id: str) -> str:
    return path.replace("{id}", job_id)


# --- the ledger's view ------------------------------------------------------------------------


def remaining(db: Database, team_id: str) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), now()).remaining


def open_holds(db: Database, team_id: str) -> int:
    """The team's open holds, a queued job start's (no slot yet) among them."""
    from sqlalchemy import func, select

    from creditgate.storage.tables import reservations

    with db.read() as conn:
        found = conn.execute(
            select(func.count()).where(
                reservations.c.team_id == team_id, reservations.c.status == "open"
            )
        ).scalar_one()
    return int(found)


def charged(db: Database, team_id: str) -> int:
    """Every credit charged to the team so far (settled charges, not holds)."""
    return sum(r.credits for r in account.history(db, teams.get_team(db, team_id), False, now()))


def make_plan(
    db: Database,
    plan_id: str,
    credits: int,
    *,
    concurrency: int = 5,
    scrape_rpm: int = 100,
    crawl_rpm: int = 100,
) -> str:
    plans.create_plan(
        db, Plan(plan_id, credits, "month", concurrency, scrape_rpm, crawl_rpm), now()
    )
    return plan_id


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def settled(db: Database, *team_ids: str, timeout: float = 20.0) -> None:
    """Wait until none of these teams has an open hold (every job followed to its end)."""
    wait_until(
        lambda: all(open_holds(db, t) == 0 for t in team_ids), "every hold is closed", timeout
    )


def pause_follower(gateway: Gateway) -> None:
    """Only the client's own calls move jobs from here on: the follower's next round is an
    hour away (its current short sleep ends first)."""
    gateway.ctx.follow_seconds = 3600
    time.sleep(0.4)


def upstream_final(fake: Fake, job_id: str, reads: int = 3) -> int:
    """Poll the upstream directly until the job's creditsUsed stops moving; return it."""
    last: int | None = None
    stable = 0
    for _ in range(50):
        used = httpx.get(f"{fake.url}/v2/crawl/{job_id}").json()["creditsUsed"]
        stable = stable + 1 if used == last else 0
        last = used
        if stable >= reads:
            break
    assert isinstance(last, int)
    return last


# --- requests ---------------------------------------------------------------------------------


def post(gateway: Gateway, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, headers=bearer(key), timeout=15)


def start_crawl(gateway: Gateway, key: str, body: dict[str, Any], path: str = "/v2/crawl") -> str:
    started = post(gateway, key, path, body)
    assert started.status_code == 200, started.text
    job_id: str = started.json()["id"]
    return job_id


def envelope(body: bytes) -> dict[str, Any]:
    """A Firecrawl error envelope, parsed (fails the test if the body is not one)."""
    parsed = json.loads(body)
    assert isinstance(parsed, dict), body
    assert parsed.get("success") is False, parsed
    assert isinstance(parsed.get("error"), str), parsed
    return parsed


@dataclass(frozen=True)
class Outcome:
    """What one request came to: its status, its envelope's error (None when the answer is not
    a Firecrawl error envelope; "Bad Request" for any text that starts so), and what of it
    reached the upstream."""

    status: int
    error: str | None
    forwarded: tuple[tuple[str, str], ...]


REFUSED = Outcome(400, BAD_REQUEST, ())
UNKNOWN = Outcome(404, NOT_FOUND, ())
NO_SUCH_JOB = Outcome(404, JOB_NOT_FOUND, ())


def error_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not (isinstance(parsed, dict) and parsed.get("success") is False):
        return None
    error = parsed.get("error")
    if not isinstance(error, str):
        return None
    return BAD_REQUEST if error.startswith(BAD_REQUEST) else error


def attempt(
    gateway: Gateway,
    fake: Fake,
    method: str,
    target: str | bytes,
    key: str | None,
    body: bytes = b"",
) -> tuple[Outcome, RawAnswer]:
    """Send one request exactly as spelled (raw socket) and say what it came to."""
    before = len(fake.state.paths)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    answer = raw_request(gateway.url, method, target, headers, body)
    forwarded = tuple(fake.state.paths[before:])
    return Outcome(answer.status, error_of(answer.body), forwarded), answer


def crawl_body(url: str = "https://site.example", limit: int | None = 2) -> bytes:
    body: dict[str, Any] = {"url": url}
    if limit is not None:
        body["limit"] = limit
    return json.dumps(body).encode()
