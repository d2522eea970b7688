"""What Firecrawl answers for a job it has accepted and not yet started, and how long a
synchronous request may wait for a slot.

Firecrawl accepts a job start at once and queues its work; creditgate does the same when the
team's slots are taken (services/queued.py). Until the upstream has the job, creditgate answers
its start and its status reads itself, in Firecrawl's shapes (its controllers, 2025-08 build:
`crawl.ts`, `batch-scrape.ts`, `extract.ts`, `generate-llmstxt.ts`, `deep-research.ts` and their
`-status.ts`), which the official SDKs parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Firecrawl's own per-request `timeout` defaults (ms), where its zod schema gives one
# (`controllers/v1/types.ts`, `v2/types.ts`): scrape 30 s, search 60 s; map names none.
DEFAULT_TIMEOUT_MS = {"scrape": 30_000, "search": 60_000}
PAGED = ("crawl", "batch_scrape")
WAITING_STATES = ("queued", "starting")


def start_answer(endpoint: str, job_id: str, status_url: str) -> dict[str, Any]:
    """Firecrawl's answer to a job start it accepted."""
    if endpoint == "crawl":
        return {"success": True, "id": job_id, "url": status_url}
    if endpoint == "batch_scrape":
        return {"success": True, "id": job_id, "url": status_url, "invalidURLs": []}
    if endpoint == "extract":
        return {"success": True, "id": job_id, "urlTrace": []}
    return {"success": True, "id": job_id}


def status_answer(
    endpoint: str, state: str, error: str | None, expires_at: str, body: Mapping[str, object]
) -> dict[str, Any]:
    """A status read of a start the upstream does not have: waiting (`queued`, `starting`),
    `cancelled` before it started, or `failed` (refused, or its start abandoned). Nothing done
    and nothing charged, whichever."""
    if state in WAITING_STATES:
        status = "scraping" if endpoint in PAGED else "processing"
    else:
        status = state
    failed = status == "failed"
    extra: dict[str, Any] = {} if error is None or not failed else {"error": error}
    if endpoint in PAGED:
        return {
            "success": True,
            "status": status,
            "completed": 0,
            "total": 0,
            "creditsUsed": 0,
            "expiresAt": expires_at,
            "data": [],
            **extra,
        }
    answer: dict[str, Any] = {"success": not failed, "status": status, "expiresAt": expires_at}
    if endpoint == "llmstxt":
        answer["data"] = {"llmstxt": ""}
    elif endpoint == "deep_research":
        depth = body.get("maxDepth")
        answer.update(
            data={"finalAnalysis": "", "sources": [], "activities": []},
            currentDepth=0,
            maxDepth=depth if isinstance(depth, int) and not isinstance(depth, bool) else 7,
            totalUrls=0,
            activities=[],
            sources=[],
        )
    else:  # extract, and a route an operator added
        answer["data"] = []
    return {**answer, **extra}


def wait_bound_ms(endpoint: str, body: Mapping[str, object], cap_ms: int) -> int:
    """How long a synchronous request may wait for a slot: as long as Firecrawl would let it
    wait — its own `timeout`, else Firecrawl's default for the endpoint — never more than
    `cap_ms` (CREDITGATE_QUEUE_WAIT_SECONDS)."""
    asked = body.get("timeout")
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
        return int(min(asked, cap_ms))
    return min(DEFAULT_TIMEOUT_MS.get(endpoint, cap_ms), cap_ms)
