"""Plans: credits per period and limits. Plans are data an operator edits; this is the seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BillingInterval = Literal["month", "year", "once"]
BILLING_INTERVALS: tuple[BillingInterval, ...] = ("month", "year", "once")


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    credits: int  # granted every period, monthly for month and year plans; once for "once"
    interval: BillingInterval  # how it is billed; periods are monthly unless "once"
    concurrency: int  # concurrent browsers / jobs
    scrape_rpm: int  # scrape, map and search requests per minute
    crawl_rpm: int  # crawl requests per minute

    @property
    def renews(self) -> bool:
        """Monthly and yearly plans both reset credits monthly; "once" never renews."""
        return self.interval != "once"


# The live service's catalog (firecrawl-api.md §4), seeded into a new database.
DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan("free", 500, "once", 2, 10, 2),
    Plan("hobby", 3_000, "month", 5, 100, 20),
    Plan("standard", 100_000, "month", 50, 500, 100),
    Plan("growth", 500_000, "month", 100, 5_000, 1_000),
    Plan("scale", 1_000_000, "month", 150, 10_000, 2_000),
)

DEFAULT_PLAN_ID = "free"

# The account (/team/*) routes allow this many requests per minute per team.
ACCOUNT_ROUTES_RPM = 1_000
