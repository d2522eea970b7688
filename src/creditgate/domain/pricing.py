"""Units of account. Credits are integers; tokens are a fixed multiple of credits."""

from __future__ import annotations

TOKENS_PER_CREDIT = 15

# Largest amount a single write may move: far above any real plan, far below 2**63.
MAX_CREDITS = 10**12


def credits_to_tokens(credits: int) -> int:
    return credits * TOKENS_PER_CREDIT


# --- what Firecrawl operations cost (firecrawl-api.md §3) -----------------------------------

DEFAULT_CRAWL_LIMIT = 10_000
SCRAPE_SURCHARGES = ("question", "highlights", "audio", "video")


def format_names(body: dict[str, object]) -> set[str]:
    """The requested formats: plain names or {"type": name} objects (v2)."""
    formats = body.get("formats")
    names: set[str] = set()
    for item in formats if isinstance(formats, list) else []:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            names.add(item["type"])
    return names


def scrape_cost(body: dict[str, object]) -> int:
    """Credits one page of a scrape with these options costs before any PDF pages."""
    names = format_names(body)
    cost = 5 if "json" in names else 1
    cost += sum(4 for s in SCRAPE_SURCHARGES if s in names)
    if body.get("zeroDataRetention") is True:
        cost += 1
    return cost


def estimate(endpoint: str, body: dict[str, object]) -> int:
    """Credits to reserve before the work: what it needs to be available (spec §3)."""
    if endpoint in ("crawl", "batch_scrape"):
        limit = body.get("limit")
        if endpoint == "batch_scrape":
            urls = body.get("urls")
            limit = len(urls) if isinstance(urls, list) else limit
        pages = (
            limit
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            else DEFAULT_CRAWL_LIMIT
        )
        return pages * scrape_cost(body)
    if endpoint == "search":
        limit = body.get("limit")
        results = (
            limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 5
        )
        return -(-results // 10) * 2
    if endpoint == "scrape":
        return scrape_cost(body)  # PDF pages are not known before: a PDF may settle higher
    return 1


def reported_cost(payload: object) -> int | None:
    """What a Firecrawl response says it cost: a top-level creditsUsed, else the sum of its
    documents' metadata.creditsUsed; None when it says nothing."""
    if not isinstance(payload, dict):
        return None
    top = payload.get("creditsUsed")
    if isinstance(top, int) and not isinstance(top, bool):
        return top
    data = payload.get("data")
    docs = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    if isinstance(data, dict) and isinstance(data.get("web"), list):  # search, v2 shape
        docs = list(data["web"])
    found = [
        d["metadata"]["creditsUsed"]
        for d in docs
        if isinstance(d, dict)
        and isinstance(d.get("metadata"), dict)
        and isinstance(d["metadata"].get("creditsUsed"), int)
    ]
    return sum(found) if found else None


def reported_job_cost(payload: dict[str, object]) -> int | None:
    """What a job's status says it has cost in all: creditsUsed, or for extract its tokens
    (tokens / 15, rounded up); None when it says nothing."""
    used = payload.get("creditsUsed")
    if isinstance(used, int) and not isinstance(used, bool):
        return used
    tokens = payload.get("tokensUsed")
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        return -(-tokens // TOKENS_PER_CREDIT)
    return None
