"""The cost table of firecrawl-api.md §3, for estimates and for answers that report nothing."""

from __future__ import annotations

from creditgate.domain.pricing import estimate, reported_cost, reported_job_cost, scrape_cost


def test_scrape_costs_one_or_five_with_json_plus_surcharges() -> None:
    assert scrape_cost({}) == 1
    assert scrape_cost({"formats": ["markdown", {"type": "json", "prompt": "x"}]}) == 5
    assert scrape_cost({"formats": ["json", "audio"], "zeroDataRetention": True}) == 10


def test_estimates_hold_what_the_work_may_cost() -> None:
    assert estimate("crawl", {"limit": 40}) == 40
    assert estimate("crawl", {"limit": 40, "formats": ["json"]}) == 200
    assert estimate("crawl", {}) == 10_000  # Firecrawl's default crawl limit
    assert estimate("batch_scrape", {"urls": ["a", "b", "c"]}) == 3
    assert estimate("search", {"limit": 25}) == 6  # 2 per 10 results, rounded up
    assert estimate("map", {}) == 1


def test_reported_costs_come_from_the_answer() -> None:
    doc = {"metadata": {"creditsUsed": 5}}
    assert reported_cost({"success": True, "data": doc}) == 5
    assert reported_cost({"data": [doc, {"metadata": {"creditsUsed": 1}}]}) == 6
    assert reported_cost({"creditsUsed": 4, "data": [doc]}) == 4
    assert reported_cost({"links": []}) is None
    assert reported_job_cost({"tokensUsed": 31}) == 3  # extract: tokens / 15, rounded up
    assert reported_job_cost({"status": "scraping"}) is None
