"""How many of a team's page slots a request asks for, and what the upstream is told."""

from __future__ import annotations

import pytest

from creditgate.domain.concurrency import forwarded_body, pending_pages, wanted_slots
from creditgate.domain.pricing import MAX_PAGES
from creditgate.domain.requests import problems


@pytest.mark.parametrize(
    ("endpoint", "body", "plan", "wanted"),
    [
        ("scrape", {"url": "https://a.example"}, 20, 1),
        ("search", {"query": "q", "limit": 10}, 20, 1),
        ("map", {"url": "https://a.example"}, 20, 1),
        ("extract", {"urls": ["https://a.example"]}, 20, 1),
        ("crawl", {"url": "https://a.example"}, 20, 20),  # no cap, no limit: the plan's
        ("crawl", {"url": "https://a.example", "limit": 40}, 20, 20),
        ("crawl", {"url": "https://a.example", "limit": 3}, 20, 3),  # never more than pages
        ("crawl", {"url": "https://a.example", "maxConcurrency": 5}, 20, 5),
        ("crawl", {"url": "https://a.example", "maxConcurrency": 50}, 20, 20),
        ("crawl", {"url": "https://a.example", "limit": 2, "maxConcurrency": 5}, 20, 2),
        ("batch_scrape", {"urls": ["a", "b"]}, 20, 2),
        ("batch_scrape", {"urls": ["a"] * 30, "maxConcurrency": 4}, 20, 4),
        ("batch_scrape", {"urls": ["a"] * 30}, 2, 2),
        ("crawl", {"url": "https://a.example"}, 0, 1),  # a plan of 0 still asks for one
    ],
)
def test_wanted_slots(endpoint: str, body: dict[str, object], plan: int, wanted: int) -> None:
    assert wanted_slots(endpoint, body, plan) == wanted


@pytest.mark.parametrize("hostile", [True, 1.5, "5", None, -3, 0, [5]])
def test_a_malformed_max_concurrency_is_refused_before_it_could_ask_for_slots(
    hostile: object,
) -> None:
    """The gateway checks the body first (400): what it would have asked never counts."""
    body = {"url": "https://a.example", "maxConcurrency": hostile}
    assert [p["path"] for p in problems("crawl", body)] == [["maxConcurrency"]]
    assert wanted_slots("crawl", body, 7) == 7  # were it asked, it would fall back to the plan


def test_a_crawl_or_batch_is_forwarded_with_the_slots_it_was_granted() -> None:
    body: dict[str, object] = {"url": "https://a.example", "maxConcurrency": 50, "limit": 9}
    assert forwarded_body("crawl", body, 3) == {**body, "maxConcurrency": 3}
    assert forwarded_body("batch_scrape", {"urls": ["a"]}, 1) == {
        "urls": ["a"],
        "maxConcurrency": 1,
    }
    assert forwarded_body("scrape", {"url": "https://a.example"}, 1) is None
    assert body["maxConcurrency"] == 50  # the request's own body is left as it came


@pytest.mark.parametrize(
    ("report", "pending"),
    [
        ({"status": "scraping", "total": 40, "completed": 7}, 33),
        ({"total": 4, "completed": 4}, 0),
        ({"total": 3, "completed": 9}, 0),  # more done than found: none pending
        ({"total": 10**20, "completed": 0}, MAX_PAGES),  # a lie is bounded
        ({"total": -5, "completed": 0}, None),
        ({"total": "40", "completed": 0}, None),
        ({"total": True, "completed": 0}, None),
        ({"status": "completed", "data": {"answer": 42}}, None),  # an extract reports no pages
    ],
)
def test_pending_pages_from_a_status_report(report: dict[str, object], pending: int | None) -> None:
    assert pending_pages(report) == pending
