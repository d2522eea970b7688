"""The price table of firecrawl-api.md §3: holds, caps, and what answers say they cost."""

from __future__ import annotations

import pytest

from creditgate.domain.price_table import DEFAULT_PRICES as T
from creditgate.domain.price_table import parse_extra_prices
from creditgate.domain.pricing import (
    Unbelievable,
    asks_agent,
    estimate,
    figureless_cost,
    figureless_job_cost,
    held_page,
    llmstxt_urls,
    max_cost,
    page_price,
    pdf_allowance,
    reported_cost,
    reported_job_cost,
    unknown,
)


def test_a_page_costs_its_dearest_base_plus_each_surcharge() -> None:
    assert page_price(T, {}) == 1
    assert page_price(T, {"formats": ["markdown", {"type": "json", "prompt": "x"}]}) == 5
    assert page_price(T, {"formats": ["json", "audio"], "zeroDataRetention": True}) == 10
    assert page_price(T, {"proxy": "stealth"}) == 5
    assert page_price(T, {"proxy": "auto"}) == 1  # escalation is known only after the page
    assert page_price(T, {"formats": [{"type": "query"}], "lockdown": True}) == 9
    assert page_price(T, {"redactPII": True}) == 5


def test_change_tracking_in_json_mode_makes_the_page_five_in_both_spellings() -> None:
    v2 = {"formats": ["markdown", {"type": "changeTracking", "modes": ["json"]}]}
    v1 = {"formats": ["markdown", "changeTracking"], "changeTrackingOptions": {"modes": ["json"]}}
    assert page_price(T, v2) == 5
    assert page_price(T, v1) == 5
    diff_only = {"formats": ["markdown", {"type": "changeTracking", "modes": ["git-diff"]}]}
    assert page_price(T, diff_only) == 1


def test_the_dearest_page_is_every_priced_item_at_once() -> None:
    # deterministicJson 10, then +1 zdr, +4 stealth, question/query, highlights, audio, video,
    # redactPII, lockdown (+4 each): 10 + 1 + 4 * 7.
    assert T.dearest_page == 39


def test_what_the_table_does_not_know_is_held_at_the_dearest_page_never_at_one() -> None:
    assert unknown(T, "scrape", {"url": "u", "onlyMainContent": True}) == []
    assert unknown(T, "scrape", {"url": "u", "newOption": 1}) == ["newOption"]
    crawl = {"url": "u", "scrapeOptions": {"formats": ["markdown", {"type": "newFormat"}]}}
    assert unknown(T, "crawl", crawl) == ["format newFormat"]
    assert held_page(T, "scrape", {"url": "u", "newOption": 1}) == T.dearest_page
    assert held_page(T, "crawl", crawl) == T.dearest_page
    assert estimate(T, "crawl", {**crawl, "limit": 10}) == 10 * T.dearest_page


def test_estimates_hold_what_the_work_may_cost() -> None:
    assert estimate(T, "crawl", {"limit": 40}) == 40
    assert estimate(T, "crawl", {}) == 10_000  # Firecrawl's own default limit
    assert estimate(T, "batch_scrape", {"urls": ["a", "b", "c"]}) == 3
    assert estimate(T, "batch_scrape", {"urls": ["a", "b"], "formats": ["json"]}) == 10
    assert estimate(T, "search", {"limit": 25}) == 25  # 1 a result on 2025-08 (the dearer)
    assert estimate(T, "search", {}) == 5
    assert estimate(T, "llmstxt", {"maxUrls": 7}) == 7
    assert estimate(T, "deep_research", {}) == 20
    assert estimate(T, "map", {}) == 1


def test_a_crawl_and_a_search_are_priced_by_their_nested_scrape_options() -> None:
    crawl = {"limit": 3, "scrapeOptions": {"formats": [{"type": "json"}]}}
    assert held_page(T, "crawl", crawl) == 5
    assert estimate(T, "crawl", crawl) == 15
    assert estimate(T, "search", {"limit": 2, "scrapeOptions": {"formats": ["markdown"]}}) == 4
    assert held_page(T, "crawl", {"zeroDataRetention": True}) == 2


def test_the_most_a_request_can_cost_is_its_pages_at_the_dearest_page() -> None:
    assert max_cost(T, "scrape", {"url": "u"}) == T.dearest_page
    assert max_cost(T, "crawl", {"limit": 100}) == 100 * T.dearest_page
    assert max_cost(T, "batch_scrape", {"urls": ["a", "b"]}) == 2 * T.dearest_page
    assert max_cost(T, "map", {}) == T.dearest_page
    assert max_cost(T, "llmstxt", {"maxUrls": 7}) == 7
    assert max_cost(T, "deep_research", {"maxUrls": 3}) == 3


def test_an_agent_page_is_bounded_by_the_agents_own_figure() -> None:
    v1 = {"url": "u", "agent": {"prompt": "click"}}  # the model defaults to FIRE-1
    assert asks_agent("scrape", v1)
    assert asks_agent("scrape", {"url": "u", "jsonOptions": {"agent": {"model": "FIRE-1"}}})
    assert not asks_agent("scrape", {"url": "u", "jsonOptions": {"prompt": "x"}})
    assert max_cost(T, "scrape", v1) == T.agent_page_max
    assert held_page(T, "scrape", v1) == T.dearest_page


def test_pdf_pages_beyond_the_first_raise_what_a_scrape_may_cost() -> None:
    doc = {"data": {"metadata": {"numPages": 30, "creditsUsed": 30}}}
    assert pdf_allowance(T, "scrape", {"url": "u"}, doc) == 29
    assert pdf_allowance(T, "scrape", {"url": "u", "parsePDF": False}, doc) == 0
    assert pdf_allowance(T, "scrape", {"url": "u", "parsers": []}, doc) == 0
    # A document claiming a million pages counts as pdfPagesMax; only a scrape's one document.
    huge = {"data": [{"metadata": {"numPages": 10**6}}] * 1001}
    assert pdf_allowance(T, "scrape", {"url": "u"}, huge) == T.pdf_pages_max - 1
    assert pdf_allowance(T, "search", {"query": "q"}, doc) == 0


def test_reported_costs_come_from_the_answer() -> None:
    doc = {"metadata": {"creditsUsed": 5}}
    assert reported_cost({"success": True, "data": doc}) == 5
    assert reported_cost({"data": [doc, {"metadata": {"creditsUsed": 1}}]}) == 6
    assert reported_cost({"creditsUsed": 4, "data": [doc]}) == 4
    assert reported_cost({"links": []}) is None
    assert reported_cost({"creditsUsed": None}) is None
    assert reported_job_cost({"tokensUsed": 31}) == 3  # extract: tokens / 15, rounded up
    assert reported_job_cost({"status": "scraping"}) is None


def test_huge_figures_are_summed_exactly_for_the_caller_to_cap() -> None:
    many = {"data": [{"metadata": {"creditsUsed": 10**9}} for _ in range(1001)]}
    assert reported_cost(many) == 1001 * 10**9
    assert reported_cost({"data": {"metadata": {"creditsUsed": 10**20}}}) == 10**20


@pytest.mark.parametrize("figure", [-5, 1.5, "3", True])
def test_a_figure_that_is_no_count_of_credits_is_refused(figure: object) -> None:
    with pytest.raises(Unbelievable):
        reported_cost({"data": {"metadata": {"creditsUsed": figure}}})
    with pytest.raises(Unbelievable):
        reported_job_cost({"creditsUsed": figure})


def test_answers_without_a_figure_are_charged_by_the_rule() -> None:
    assert figureless_cost(T, "map", {}, {"links": []}) == 1
    results = {"data": [{"url": "a"}, {"url": "b"}, {"url": "c"}]}
    assert figureless_cost(T, "search", {}, results) == 3
    scraped = {"scrapeOptions": {"formats": ["json"]}}
    assert figureless_cost(T, "search", scraped, results) == 3 + 3 * 5
    later = parse_extra_prices('{"build": "later"}')
    assert figureless_cost(later, "search", {}, {"data": [{"url": str(i)} for i in range(11)]}) == 4


def test_llmstxt_and_deep_research_are_charged_what_their_answers_show() -> None:
    text = "# site\n\n> about\n\n- [a](https://a.example): a\n- [b](https://b.example): b\n"
    assert llmstxt_urls(text) == 2
    done = {"status": "completed", "data": {"llmstxt": text}}
    assert figureless_job_cost("llmstxt", done, cap=10) == 2
    assert figureless_job_cost("llmstxt", done, cap=1) == 1
    assert figureless_job_cost("llmstxt", {"status": "processing"}, cap=10) is None
    assert figureless_job_cost("llmstxt", {"status": "failed"}, cap=10) == 0
    research = {"status": "completed", "totalUrls": 7, "sources": [{}] * 7}
    assert figureless_job_cost("deep_research", research, cap=5) == 5
    assert figureless_job_cost("deep_research", {"status": "completed", "sources": [{}]}, 5) == 1
    assert figureless_job_cost("crawl", {"status": "completed"}, cap=5) is None


def test_an_operator_adds_rows_of_a_newer_release() -> None:
    table = parse_extra_prices(
        '{"pages": [{"item": "magic", "credits": 7, "format": "magic"}],'
        ' "operations": [{"operation": "agent", "credits": 3}]}'
    )
    assert page_price(table, {"formats": ["magic"]}) == 8
    assert held_page(table, "scrape", {"formats": ["magic"]}) == 8  # known now
    assert table.dearest_page == T.dearest_page + 7
    assert estimate(table, "agent", {}) == 3
    assert figureless_cost(table, "agent", {}, {}) == 3


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"unknown": 1}',
        '{"pages": [{"item": "x", "credits": -1, "format": "x"}]}',
        '{"pages": [{"item": "x", "credits": 1}]}',
        '{"pages": [{"item": "x", "credits": 1, "format": "x", "option": "y"}]}',
        '{"pages": [{"item": "x", "credits": true, "format": "x"}]}',
        '{"operations": [{"operation": "x", "credits": 1, "per": 0}]}',
        '{"operations": [{"operation": "x", "credits": 1, "unit": "minute"}]}',
        '{"build": "2024"}',
        '{"agentPageMax": 0}',
    ],
)
def test_a_bad_operator_table_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_extra_prices(text)
