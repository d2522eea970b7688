"""Units of account. Credits are integers; tokens are a fixed multiple of credits."""

from __future__ import annotations

TOKENS_PER_CREDIT = 15

# Largest amount a single write may move: far above any real plan, far below 2**63.
MAX_CREDITS = 10**12


def credits_to_tokens(credits: int) -> int:
    return credits * TOKENS_PER_CREDIT


# --- what Firecrawl operations cost (firecrawl-api.md §3) -----------------------------------

DEFAULT_CRAWL_LIMIT = 10_000  # Firecrawl's own default when a crawl names no limit
MAX_PAGES = 10_000_000  # the largest page count, result count or URL count a request may ask
DEFAULT_SEARCH_RESULTS = 5
DEFAULT_MAX_URLS = {"llmstxt": 10, "deep_research": 20}
SCRAPE_SURCHARGES = ("question", "highlights", "audio", "video")
# A reported figure outside this range is not believed (firecrawl-api.md §3: a page costs a few
# credits; no single answer reports a billion).
MAX_REPORTED = 10**9


def format_names(options: dict[str, object]) -> set[str]:
    """The requested formats: plain names or {"type": name} objects (v2)."""
    formats = options.get("formats")
    names: set[str] = set()
    for item in formats if isinstance(formats, list) else []:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            names.add(item["type"])
    return names


def scrape_cost(options: dict[str, object]) -> int:
    """Credits one page scraped with these options costs before any PDF pages."""
    names = format_names(options)
    cost = 5 if "json" in names else 1
    cost += sum(4 for s in SCRAPE_SURCHARGES if s in names)
    if options.get("zeroDataRetention") is True:
        cost += 1
    return cost


def page_options(endpoint: str, body: dict[str, object]) -> dict[str, object]:
    """The scrape options each page of this request is scraped with: a crawl's and a search's
    are nested in `scrapeOptions`; a scrape's and a batch scrape's are the body itself."""
    if endpoint in ("crawl", "search", "extract"):
        nested = body.get("scrapeOptions")
        options = dict(nested) if isinstance(nested, dict) else {}
        if body.get("zeroDataRetention") is True:
            options["zeroDataRetention"] = True
        return options
    return body


def page_cost(endpoint: str, body: dict[str, object]) -> int:
    return scrape_cost(page_options(endpoint, body))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def pages(endpoint: str, body: dict[str, object]) -> int:
    """How many units of work the request asks for (validated beforehand)."""
    if endpoint == "crawl":
        return _count(body.get("limit")) or DEFAULT_CRAWL_LIMIT
    if endpoint == "batch_scrape":
        urls = body.get("urls")
        return len(urls) if isinstance(urls, list) else 1
    if endpoint == "search":
        return _count(body.get("limit")) or DEFAULT_SEARCH_RESULTS
    if endpoint in DEFAULT_MAX_URLS:
        return _count(body.get("maxUrls")) or DEFAULT_MAX_URLS[endpoint]
    if endpoint == "extract":
        urls = body.get("urls")
        return max(len(urls), 1) if isinstance(urls, list) else 1
    return 1


def estimate(endpoint: str, body: dict[str, object]) -> int:
    """Credits to hold before the work: the most it is expected to cost (spec §3)."""
    if endpoint in ("crawl", "batch_scrape"):
        return pages(endpoint, body) * page_cost(endpoint, body)
    if endpoint == "search":
        return pages(endpoint, body) * search_result_cost(body)
    if endpoint == "scrape":
        return scrape_cost(body)  # PDF pages are not known before: a PDF may settle higher
    if endpoint in DEFAULT_MAX_URLS:
        return pages(endpoint, body)
    return 1


def search_result_cost(body: dict[str, object]) -> int:
    """One credit a result (what Firecrawl 2025-08 reports on v2, and so charges on v1 too),
    plus the scrape of the result when the search asks for formats."""
    nested = body.get("scrapeOptions")
    scraped = isinstance(nested, dict) and bool(format_names(nested))
    return 1 + (page_cost("search", body) if scraped else 0)


def _believable(value: object) -> int | None:
    count = _count(value)
    return count if count is not None and 0 <= count <= MAX_REPORTED else None


class Unbelievable(ValueError):
    """A reported figure out of range: the answer is relayed, the cost table charged."""


def reported_cost(payload: object) -> int | None:
    """What a Firecrawl response says it cost: a top-level creditsUsed, else the sum of its
    documents' metadata.creditsUsed; None when it says nothing. Unbelievable if a figure is
    not an integer from 0 to MAX_REPORTED."""
    if not isinstance(payload, dict):
        return None
    if payload.get("creditsUsed") is not None:
        return _checked(payload["creditsUsed"])
    data = payload.get("data")
    docs = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    if isinstance(data, dict) and isinstance(data.get("web"), list):  # search, v2 shape
        docs = list(data["web"])
    found = [
        _checked(d["metadata"]["creditsUsed"])
        for d in docs
        if isinstance(d, dict)
        and isinstance(d.get("metadata"), dict)
        and d["metadata"].get("creditsUsed") is not None
    ]
    return sum(found) if found else None


def _checked(value: object) -> int:
    believed = _believable(value)
    if believed is None:
        raise Unbelievable(f"creditsUsed {value!r} is not an integer from 0 to {MAX_REPORTED}")
    return believed


def reported_job_cost(payload: dict[str, object]) -> int | None:
    """What a job's status says it has cost in all: creditsUsed, or for extract its tokens
    (tokens / 15, rounded up); None when it says nothing. Unbelievable when out of range."""
    if payload.get("creditsUsed") is not None:
        return _checked(payload["creditsUsed"])
    if payload.get("tokensUsed") is not None:
        return -(-_checked(payload["tokensUsed"]) // TOKENS_PER_CREDIT)
    return None
