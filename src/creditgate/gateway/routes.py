"""Which Firecrawl operation a request is: what it costs, how it is settled, which limit applies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["sync", "async", "status", "cancel", "owned", "active", "passthrough"]

# (method, pattern, endpoint, kind); the first match wins. {v} is v1 or v2.
_TABLE: list[tuple[str, str, str, Kind]] = [
    ("POST", r"/(v1|v2)/scrape", "scrape", "sync"),
    ("POST", r"/(v1|v2)/map", "map", "sync"),
    ("POST", r"/(v1|v2)/search", "search", "sync"),
    ("POST", r"/(v1|v2)/crawl", "crawl", "async"),
    ("POST", r"/(v1|v2)/batch/scrape", "batch_scrape", "async"),
    ("POST", r"/(v1|v2)/extract", "extract", "async"),
    ("POST", r"/(v2)/agent", "agent", "async"),
    ("GET", r"/(v1|v2)/crawl/active", "crawl", "active"),
    ("GET", r"/(v1|v2)/(crawl|batch/scrape|extract|agent)/(?P<id>[^/]+)", "", "status"),
    ("DELETE", r"/(v1|v2)/(crawl|batch/scrape|agent)/(?P<id>[^/]+)", "", "cancel"),
    ("GET", r"/(v1|v2)/(crawl|batch/scrape)/(?P<id>[^/]+)/errors", "", "owned"),
]
_COMPILED = [(m, re.compile(p + "$"), e, k) for m, p, e, k in _TABLE]
ASYNC_STATUS = {
    "crawl": "crawl",
    "batch_scrape": "batch/scrape",
    "extract": "extract",
    "agent": "agent",
}


@dataclass(frozen=True, slots=True)
class Operation:
    endpoint: str  # the activity name: scrape, crawl, batch_scrape, ...; "" for job routes
    kind: Kind
    version: str
    job_id: str | None = None

    @property
    def mode(self) -> str:
        """Which of the plan's per-minute limits applies."""
        return "crawl" if self.endpoint in ("crawl", "batch_scrape") else "scrape"

    def status_path(self, job_id: str) -> str:
        return f"/{self.version}/{ASYNC_STATUS[self.endpoint]}/{job_id}"


def classify(method: str, path: str) -> Operation:
    for m, pattern, endpoint, kind in _COMPILED:
        found = pattern.match(path)
        if found and m == method:
            job_id = found.groupdict().get("id")
            return Operation(endpoint, kind, found.group(1), job_id)
    version = "v1" if path.startswith("/v1/") else "v2"
    return Operation("", "passthrough", version)
