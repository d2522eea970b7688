"""The cost table of firecrawl-api.md §3, for estimates and for answers that report nothing."""

from __future__ import annotations

import pytest

from creditgate.domain.pricing import (
    Unbelievable,
    estimate,
    page_cost,
    reported_cost,
    reported_job_cost,
    scrape_cost,
)


def test_scrape_costs_one_or_five_with_json_plus_surcharges() -> None:
    assert scrape_cost({}) == 1
    assert scrape_cost({"formats": ["markdown", {"type": "json", "prompt": "x"}]}) == 5
    assert scrape_cost({"formats": ["json", "audio"], "zeroDataRetention": True}) == 10


def test_estimates_hold_what_the_work_may_cost() -> None:
    assert estimate("crawl", {"limit": 40}) == 40
    assert estimate("crawl", {}) == 10_000  # Firecrawl's default crawl limit
    assert estimate("batch_scrape", {"urls": ["a", "b", "c"]}) == 3
    assert estimate("batch_scrape", {"urls": ["a", "b"], "formats": ["json"]}) == 10
    assert estimate("search", {"limit": 25}) == 25  # 1 a result, as Firecrawl 2025-08 bills
    assert estimate("search", {}) == 5
    assert estimate("llmstxt", {"maxUrls": 7}) == 7
    assert estimate("deep_research", {}) == 20
    assert estimate("map", {}) == 1


def test_a_crawl_and_a_search_are_priced_by_their_nested_scrape_options() -> None:
    crawl = {"limit": 3, "scrapeOptions": {"formats": [{"type": "json"}]}}
    assert page_cost("crawl", crawl) == 5
    assert estimate("crawl", crawl) == 15
    assert estimate("crawl", {"limit": 3, "formats": ["json"]}) == 3  # not a crawl option
    assert estimate("search", {"limit": 2, "scrapeOptions": {"formats": ["markdown"]}}) == 4
    assert page_cost("crawl", {"zeroDataRetention": True}) == 2


def test_reported_costs_come_from_the_answer() -> None:
    doc = {"metadata": {"creditsUsed": 5}}
    assert reported_cost({"success": True, "data": doc}) == 5
    assert reported_cost({"data": [doc, {"metadata": {"creditsUsed": 1}}]}) == 6
    assert reported_cost({"creditsUsed": 4, "data": [doc]}) == 4
    assert reported_cost({"links": []}) is None
    assert reported_cost({"creditsUsed": None}) is None
    assert reported_job_cost({"tokensUsed": 31}) == 3  # extract: tokens / 15, rounded up
    assert reported_job_cost({"status": "scraping"}) is None


@pytest.mark.parametrize("figure", [-5, 10**20, 1.5, "3", True])
def test_an_unbelievable_reported_figure_is_refused(figure: object) -> None:
    with pytest.raises(Unbelievable):
        reported_cost({"data": {"metadata": {"creditsUsed": figure}}})
    with pytest.raises(Unbelievable):
        reported_job_cost({"creditsUsed": figure})
