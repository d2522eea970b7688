"""What a request holds before its work, and how a job's hold may grow (firecrawl-api.md §3).

A request holds its estimate at the price table's price (domain/pricing.py). A job's hold then
follows the cost its status reports show: it grows by a step (`MIN_STEP_PAGES` pages, or twice
the plan's concurrency, at a page's price) whenever the reported total nears it, up to its
ceiling, the most the request can cost (services/jobs.py). A crawl's `limit` is lowered to what
the team can pay for at the table's price, as the live API does; a crawl without a limit holds
only a step at first, so a long crawl never locks the team's other keys out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditgate.domain import pricing
from creditgate.domain.price_table import PriceTable

MIN_STEP_PAGES = 10  # a job's hold stays this many pages (or 2 x concurrency) ahead


@dataclass(frozen=True, slots=True)
class HoldPlan:
    first: int  # held now
    step: int  # a job's hold grows by this much (more if its pages cost more)
    ceiling: int  # the most the request can cost: the hold grows no further, figures are capped
    page_price: int | None = None  # a page at the table's price (paged jobs)
    page_limit: int | None = None  # the most pages it can run (paged jobs)


def plan_hold(
    table: PriceTable,
    endpoint: str,
    body: dict[str, Any],
    *,
    job: bool,
    concurrency: int,
    spendable: int | None = None,
) -> tuple[dict[str, Any], HoldPlan]:
    """The body to forward and the hold of a request. `job`: it starts an upstream job.
    `spendable`: what the key can spend now, when less than a crawl's estimate."""
    if not job or endpoint not in pricing.PAGED:
        first = pricing.estimate(table, endpoint, body)
        return body, HoldPlan(first, first, max(pricing.max_cost(table, endpoint, body), first))
    per_page = pricing.held_page(table, endpoint, body)
    step = max(2 * concurrency, MIN_STEP_PAGES) * per_page
    pages = pricing.pages(endpoint, body)
    if endpoint == "crawl":
        if spendable is not None and spendable >= per_page:
            pages = min(pages, spendable // per_page)
        whole = "limit" in body
        asked = body.get("limit")
        body = {**body, "limit": min(asked, pages) if isinstance(asked, int) else pages}
        first = pages * per_page if whole else min(pages * per_page, step)
    else:
        first = pricing.estimate(table, endpoint, body)
    first = min(max(first, 1), pricing.MAX_CREDITS)  # an operator's dearest rows x 10M pages
    ceiling = max(pricing.max_cost(table, endpoint, body), first)
    step = min(step, pricing.MAX_CREDITS)
    return body, HoldPlan(first, step, ceiling, per_page, pages)
