"""What a metered request must be before anything is held for it."""

from __future__ import annotations

import pytest

from creditgate.domain.requests import problems


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        (1e12, "invalid_type"),
        (1.5, "invalid_type"),
        ("100000", "invalid_type"),
        (True, "invalid_type"),
        (None, "invalid_type"),
        (-1, "too_small"),
        (10**29, "too_big"),
        (10_000_001, "too_big"),
    ],
)
def test_a_crawl_limit_must_be_a_positive_integer_within_bounds(limit: object, code: str) -> None:
    found = problems("crawl", {"url": "https://a.example", "limit": limit})
    assert [(p["code"], p["path"]) for p in found] == [(code, ["limit"])]


def test_a_crawl_limit_of_zero_is_taken_as_firecrawl_takes_it() -> None:
    """Firecrawl's schema takes any number for a crawl's limit (issue 18: `limit: 0` was
    refused); every other count stays at least 1."""
    assert problems("crawl", {"url": "https://a.example", "limit": 0}) == []
    found = problems("llmstxt", {"url": "https://a.example", "maxUrls": 0})
    assert [(p["code"], p["path"]) for p in found] == [("too_small", ["maxUrls"])]


def test_a_well_formed_crawl_has_no_problems() -> None:
    assert problems("crawl", {"url": "https://a.example", "limit": 10_000_000}) == []
    assert problems("crawl", {"url": "https://a.example"}) == []


@pytest.mark.parametrize(
    ("urls", "path"),
    [(None, ["urls"]), ("https://a.example", ["urls"]), ([], ["urls"]), (["a", 3], ["urls", 1])],
)
def test_a_batch_scrape_names_a_non_empty_list_of_urls(urls: object, path: list[object]) -> None:
    body = {} if urls is None else {"urls": urls}
    assert [p["path"] for p in problems("batch_scrape", body)] == [path]


def test_formats_must_be_lists_to_be_priced() -> None:
    found = problems("crawl", {"scrapeOptions": {"formats": "json"}})
    assert [p["path"] for p in found] == [["scrapeOptions", "formats"]]
    assert [p["path"] for p in problems("scrape", {"formats": {"type": "json"}})] == [["formats"]]
    assert [p["path"] for p in problems("crawl", {"scrapeOptions": "x"})] == [["scrapeOptions"]]


def test_a_body_that_is_not_an_object_is_a_problem() -> None:
    assert problems("scrape", [1, 2]) == [
        {"code": "invalid_type", "path": [], "message": "Expected object, received array"}
    ]
