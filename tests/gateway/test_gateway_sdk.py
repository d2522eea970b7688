"""The official Python SDK through the gateway: the work, then the account routes' numbers."""

from __future__ import annotations

from firecrawl import Firecrawl

from creditgate.domain.instants import now
from creditgate.services import keys
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import team_with_key


def test_python_sdk_through_the_gateway_is_charged_exactly_per_key(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now(), key_name="crawler")
    other = keys.create_key(db, team.id, now(), name="scraper").secret
    crawler = Firecrawl(api_key=key, api_url=gateway.url)
    scraper = Firecrawl(api_key=other, api_url=gateway.url)

    doc = scraper.scrape("https://example.com", formats=["markdown"])
    assert doc.metadata is not None and doc.metadata.credits_used == 1
    mapped = scraper.map("https://example.com")
    assert len(mapped.links) == 2
    found = scraper.search("creditgate", limit=3)
    assert found.web is not None and len(found.web) == 3

    job = crawler.crawl("https://site.example", limit=3, poll_interval=1, timeout=30)
    assert (job.status, job.completed, job.credits_used) == ("completed", 3, 3)
    assert len(job.data) == 3  # paged through `next`, via the gateway

    usage = crawler.get_credit_usage()
    assert usage.remaining_credits == 3000 - (1 + 1 + 3) - 3  # search: 1 per result
    history = crawler.v2.get_credit_usage_historical(by_api_key=True)
    assert [(p.apiKey, p.creditsUsed) for p in history.periods] == [("crawler", 3), ("scraper", 5)]
    assert crawler.get_queue_status().active_jobs_in_queue == 0


def test_active_crawls_are_the_teams_own(db: Database, fake: Fake, gateway: Gateway) -> None:
    gateway.ctx.follow_seconds = 3600  # keep the crawls running
    _, key, _ = team_with_key(db, now())
    _, other, _ = team_with_key(db, now(), name="other")
    mine = Firecrawl(api_key=key, api_url=gateway.url)
    started = mine.start_crawl("https://site.example", limit=3)
    Firecrawl(api_key=other, api_url=gateway.url).start_crawl("https://other.example", limit=2)
    active = mine.get_active_crawls()
    assert [(c.id, c.url) for c in active.crawls] == [(started.id, "https://site.example")]
