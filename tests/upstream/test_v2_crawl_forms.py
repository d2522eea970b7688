"""The v1 form of a v2 crawl (domain/crawl_forms.py) is stored and run by the real Firecrawl as
the v2 crawl itself would be: both are started straight at the upstream, and the options it
lists for each in `GET /v2/crawl/ongoing` (its stored crawler and scrape options) must match.
`maxConcurrency` is not among them: the v2 crawl is sent without it, so this runs on every build.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from creditgate.domain import crawl_forms
from tests.upstream import firecrawl as fc

BODIES: list[dict[str, Any]] = [
    {},
    {"limit": 3, "sitemap": "skip", "crawlEntireDomain": True},
    {
        "limit": 2,
        "includePaths": ["^/slow/.*"],
        "excludePaths": ["private"],
        "maxDiscoveryDepth": 2,
        "allowSubdomains": True,
        "ignoreQueryParameters": True,
        "deduplicateSimilarURLs": False,
        "delay": 1,
        "scrapeOptions": {
            "formats": ["html", {"type": "links"}, {"type": "screenshot", "fullPage": True}],
            "onlyMainContent": False,
            "timeout": 30000,
            "waitFor": 100,
            "parsers": [],
            "proxy": "basic",
            "maxAge": 0,
            "headers": {"x-a": "1"},
            "excludeTags": ["nav"],
            "mobile": True,
        },
    },
    {"limit": 2, "scrapeOptions": {"formats": [{"type": "json", "prompt": "the title"}]}},
]


# Options v1 always stores and v2 leaves unset, and the value the build reads an unset one as:
# `allowBackwardCrawling ?? false` (scraper/WebScraper/crawler.ts:117); a PDF is parsed unless
# `parsers?.includes("pdf") === false` (scraper/scrapeURL/engines/pdf/index.ts:165, index/index.ts);
# an unset maxAge is 2 days when self-hosted (scraper/scrapeURL/engines/index/index.ts:144-151).
READ_WHEN_UNSET = {"crawlEntireDomain": False}
SCRAPE_READ_WHEN_UNSET = {"parsers": ["pdf"], "maxAge": 2 * 24 * 60 * 60 * 1000}


def read(options: dict[str, Any]) -> dict[str, Any]:
    """Stored options as the build reads them."""
    scrape = {**SCRAPE_READ_WHEN_UNSET, **options["scrapeOptions"]}
    return {**READ_WHEN_UNSET, **options, "scrapeOptions": scrape}


def ongoing(firecrawl: fc.Firecrawl) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{firecrawl.url}/v2/crawl/ongoing", timeout=30)
    assert answer.status_code == 200, answer.text
    return {c["id"]: c for c in answer.json()["crawls"]}


def start(firecrawl: fc.Firecrawl, path: str, body: dict[str, Any]) -> str:
    answer = httpx.post(f"{firecrawl.url}{path}", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    job_id: str = answer.json()["id"]
    return job_id


@pytest.mark.parametrize("extra", BODIES, ids=lambda b: ",".join(sorted(b)) or "defaults")
def test_the_v1_form_is_stored_as_the_v2_crawl(
    firecrawl: fc.Firecrawl, extra: dict[str, Any]
) -> None:
    body = {"url": f"{firecrawl.site}/slow/index.html", "limit": 3, **extra}
    form = crawl_forms.as_v1_crawl({**body, "maxConcurrency": 1})
    assert isinstance(form, dict), form
    v2_id = start(firecrawl, "/v2/crawl", body)
    v1_id = start(firecrawl, "/v1/crawl", form)
    try:
        listed = ongoing(firecrawl)
        assert {v2_id, v1_id} <= set(listed), "both crawls still run (slow pages)"
        assert listed[v1_id]["url"] == listed[v2_id]["url"]
        assert read(listed[v1_id]["options"]) == read(listed[v2_id]["options"])
    finally:
        for job_id in (v2_id, v1_id):
            httpx.delete(f"{firecrawl.url}/v2/crawl/{job_id}", timeout=30)
