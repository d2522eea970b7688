"""Plan concurrency counts pages in flight, as Firecrawl counts it.

A team's plan concurrency is the number of pages it may have scraping upstream at once (a
"slot" each), not the number of its requests or jobs. A synchronous request (scrape, search,
map) takes one slot while it runs. A crawl or batch scrape takes up to its `maxConcurrency`
slots (the plan's concurrency if it names none), and the upstream is told to scrape at most
that many of its pages at once; it keeps them until it ends. Other job starts (extract,
llmstxt, deep research) take one. A start that finds fewer slots free than it wants gets the
free ones, never more than it asked; one that finds none waits in the team's queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

from creditgate.domain.pricing import MAX_PAGES

PAGED = ("crawl", "batch_scrape")  # the endpoints whose pages the upstream runs side by side
FIELD = "maxConcurrency"  # the request field that caps a crawl's pages in flight, upstream


def wanted_slots(endpoint: str, body: Mapping[str, object], plan_concurrency: int) -> int:
    """The slots a request asks for: a crawl's or batch's `maxConcurrency`, or the plan's
    concurrency, and no more than it has pages (a crawl's `limit`, a batch's URLs); one for
    anything else. Never more than the plan's, never fewer than one."""
    if endpoint not in PAGED:
        return 1
    wanted = plan_concurrency
    asked = body.get(FIELD)
    if _count(asked) and asked > 0:
        wanted = min(wanted, asked)
    pages = _pages(endpoint, body)
    if pages is not None:
        wanted = min(wanted, pages)
    return max(wanted, 1)


def _pages(endpoint: str, body: Mapping[str, object]) -> int | None:
    """The most pages the job can have: a batch's URLs, a crawl's limit (if given)."""
    if endpoint == "batch_scrape":
        urls = body.get("urls")
        return len(urls) if isinstance(urls, list) else None
    limit = body.get("limit")
    return limit if _count(limit) else None


def forwarded_body(
    endpoint: str, body: Mapping[str, object], granted: int
) -> dict[str, object] | None:
    """A crawl's or batch's body as forwarded: capped at the slots it was granted, so the
    upstream never runs more of its pages at once. None: forwarded as it came."""
    if endpoint not in PAGED:
        return None
    return {**body, FIELD: granted}


def pending_pages(report: Mapping[str, object]) -> int | None:
    """Pages a job's status report says it found and has not done (`total - completed`), or
    None if it reports no such counts. Bounded: an upstream that lies cannot inflate the
    team's queue past what a crawl can be."""
    total, completed = report.get("total"), report.get("completed")
    if not (_count(total) and _count(completed)):
        return None
    return min(max(total - completed, 0), MAX_PAGES)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
