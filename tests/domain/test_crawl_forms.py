"""The v1 form of a v2 crawl (domain/crawl_forms.py). Whether the real build stores the two
alike is tested against it in tests/upstream/test_v2_crawl_forms.py."""

from __future__ import annotations

import pytest

from creditgate.domain.crawl_forms import V2_MAX_DEPTH, NoV1Form, as_v1_crawl

URL = "https://site.example/index.html"
V2_SCRAPE_DEFAULTS = {"skipTlsVerification": True, "proxy": "auto", "maxAge": 172_800_000}


def formats(form: dict[str, object] | NoV1Form) -> object:
    assert isinstance(form, dict)
    scrape = form["scrapeOptions"]
    assert isinstance(scrape, dict)
    return scrape["formats"]


def test_a_bare_crawl_spells_out_v2s_defaults_where_v1s_differ() -> None:
    assert as_v1_crawl({"url": URL}) == {
        "url": URL,
        "maxDepth": V2_MAX_DEPTH,
        "scrapeOptions": V2_SCRAPE_DEFAULTS,
    }


def test_crawler_options_keep_their_names_and_sitemap_becomes_ignore_sitemap() -> None:
    body = {
        "url": URL,
        "limit": 7,
        "maxConcurrency": 2,
        "crawlEntireDomain": True,
        "includePaths": ["^/a"],
        "webhook": {"url": "https://hook.example"},
        "sitemap": "skip",
    }
    form = as_v1_crawl(body)
    assert isinstance(form, dict)
    assert form["ignoreSitemap"] is True and "sitemap" not in form
    assert {k: form[k] for k in body if k != "sitemap"} == {
        k: v for k, v in body.items() if k != "sitemap"
    }
    assert as_v1_crawl({"url": URL, "sitemap": "include"}) == {
        "url": URL,
        "maxDepth": V2_MAX_DEPTH,
        "ignoreSitemap": False,
        "scrapeOptions": V2_SCRAPE_DEFAULTS,
    }


def test_formats_become_v1s_names_and_options() -> None:
    form = as_v1_crawl(
        {
            "url": URL,
            "scrapeOptions": {
                "formats": [
                    "markdown",
                    {"type": "links"},
                    {"type": "screenshot", "fullPage": False},
                    {"type": "json", "prompt": "the title", "schema": {"type": "object"}},
                ],
                "parsers": [],
                "proxy": "basic",
                "timeout": 30000,
            },
        }
    )
    assert isinstance(form, dict)
    assert form["scrapeOptions"] == {
        "skipTlsVerification": True,
        "maxAge": 172_800_000,
        "proxy": "basic",  # given: kept, not the default
        "formats": ["markdown", "links", "screenshot", "json"],
        "jsonOptions": {"prompt": "the title", "schema": {"type": "object"}},
        "parsePDF": False,
        "timeout": 30000,
    }
    full = as_v1_crawl({"url": URL, "scrapeOptions": {"formats": ["screenshot", "html"]}})
    assert formats(full) == ["screenshot", "html"]
    page = as_v1_crawl(
        {"url": URL, "scrapeOptions": {"formats": [{"type": "screenshot", "fullPage": True}]}}
    )
    assert formats(page) == ["screenshot@fullPage"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"prompt": "only the blog"}, "`prompt`"),
        ({"scrapeOptions": {"formats": [{"type": "screenshot", "quality": 50}]}}, "`quality`"),
        ({"scrapeOptions": {"formats": ["markdown", "changeTracking"]}}, "`changeTracking`"),
    ],
)
def test_v2_only_options_have_no_v1_form(body: dict[str, object], names: str) -> None:
    form = as_v1_crawl({"url": URL, **body})
    assert isinstance(form, NoV1Form) and not form.invalid and names in form.reason


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": URL, "limitt": 3},
        {"url": URL, "sitemap": "only"},
        {"url": URL, "scrapeOptions": []},
        {"url": URL, "scrapeOptions": {"formats": "markdown"}},
        {"url": URL, "scrapeOptions": {"formats": [{"type": "gif"}]}},
        {"url": URL, "scrapeOptions": {"parsers": ["docx"]}},
        {"url": URL, "scrapeOptions": {"colour": "red"}},
    ],
)
def test_a_body_that_is_no_v2_crawl_is_left_to_the_upstream(body: dict[str, object]) -> None:
    form = as_v1_crawl(body)
    assert isinstance(form, NoV1Form) and form.invalid
