"""What Firecrawl operations cost (firecrawl-api.md §3): holds, caps, and answers' figures.

Three figures per request, all from the price table (domain/price_table.py):
- `estimate`: what to hold before the work, at the table's price; a page asking for an option
  or format the table does not know is held at the table's dearest page.
- `max_cost`: the most the request can be charged: its pages at the dearest page (an agent's
  pages at the agent's bound). A reported figure above it is capped, so an upstream that lies
  cannot move more than the request could cost.
- the reported figure: what the upstream says the work cost, the truth to settle on; where an
  answer carries none (map, v1 search, llms.txt, deep research), §3's rule applied to what the
  answer shows (`figureless_cost`, `figureless_job_cost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from creditgate.domain.price_table import (
    DEFAULT_PRICES,
    TOKENS_PER_CREDIT,
    PageItem,
    PriceTable,
    price_of,
)

__all__ = ["DEFAULT_PRICES", "TOKENS_PER_CREDIT", "PriceTable"]

# Largest amount a single write may move: far above any real plan, far below 2**63.
MAX_CREDITS = 10**12


def credits_to_tokens(credits: int) -> int:
    return credits * TOKENS_PER_CREDIT


DEFAULT_CRAWL_LIMIT = 10_000  # Firecrawl's own default when a crawl names no limit
MAX_PAGES = 10_000_000  # the largest page count, result count or URL count a request may ask
DEFAULT_SEARCH_RESULTS = 5
DEFAULT_MAX_URLS = {"llmstxt": 10, "deep_research": 20}
NESTED = ("crawl", "search", "extract")  # endpoints whose page options are in scrapeOptions
PAGED = ("crawl", "batch_scrape")
SEARCH_KINDS = ("web", "news", "images")  # a v2 search's results, by source
Body = Mapping[str, Any]


# --- what a request asks for ----------------------------------------------------------------


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def page_options(endpoint: str, body: Body) -> dict[str, Any]:
    """The scrape options each page of this request is scraped with: a crawl's, a search's and
    an extract's are nested in `scrapeOptions`; a scrape's and a batch scrape's are the body."""
    if endpoint in NESTED:
        nested = body.get("scrapeOptions")
        options = dict(nested) if isinstance(nested, dict) else {}
        if body.get("zeroDataRetention") is True:
            options["zeroDataRetention"] = True
        return options
    return dict(body)


def _formats(options: Body) -> list[tuple[str, Mapping[str, Any]]]:
    """The requested formats with their options: plain names (v1) or {"type": ...} (v2)."""
    formats = options.get("formats")
    found: list[tuple[str, Mapping[str, Any]]] = []
    for item in formats if isinstance(formats, list) else []:
        if isinstance(item, str):
            found.append((item, {}))
        elif isinstance(item, dict) and isinstance(item.get("type"), str):
            found.append((item["type"], item))
    return found


def format_names(options: Body) -> set[str]:
    return {name for name, _ in _formats(options)}


def pages(endpoint: str, body: Body) -> int:
    """How many units of work the request asks for (validated beforehand)."""
    if endpoint == "crawl":  # a limit of 0 still crawls the start page: one page
        limit = _count(body.get("limit"))
        return DEFAULT_CRAWL_LIMIT if limit is None else max(limit, 1)
    if endpoint == "batch_scrape":
        urls = body.get("urls")
        return len(urls) if isinstance(urls, list) else 1
    if endpoint == "search":  # v2: up to `limit` results from each source asked for
        return (_count(body.get("limit")) or DEFAULT_SEARCH_RESULTS) * search_sources(body)
    if endpoint in DEFAULT_MAX_URLS:
        return _count(body.get("maxUrls")) or DEFAULT_MAX_URLS[endpoint]
    if endpoint == "extract":
        urls = body.get("urls")
        return max(len(urls), 1) if isinstance(urls, list) else 1
    return 1


def search_sources(body: Body) -> int:
    """How many sources a v2 search reads (web, news, images: `limit` results from each);
    one (web) when it names none. Any entry counts, known or not: the hold never shrinks."""
    sources = body.get("sources")
    if not isinstance(sources, list) or not sources:
        return 1
    kinds: set[str] = set()
    odd = 0  # entries with no type name: each counted, the upstream will refuse them anyway
    for source in sources:
        kind = source.get("type") if isinstance(source, dict) else source
        if isinstance(kind, str):
            kinds.add(kind)
        else:
            odd += 1
    return max(len(kinds) + odd, 1)


def asks_agent(endpoint: str, body: Body) -> bool:
    """Does a page of this request run the FIRE-1 agent (v1 `agent`, `jsonOptions.agent`,
    `extract.agent`; an agent's model defaults to FIRE-1)? Its cost is its LLM spend."""
    places = [body, page_options(endpoint, body)]
    for options in places:
        for holder in (options, options.get("jsonOptions"), options.get("extract")):
            agent = holder.get("agent") if isinstance(holder, dict) else None
            if isinstance(agent, dict):
                model = agent.get("model", "fire-1")
                if not isinstance(model, str) or model.lower() == "fire-1":
                    return True
    return False


def unknown(table: PriceTable, endpoint: str, body: Body) -> list[str]:
    """What this request asks that the table does not know: option names (top level and a
    nested `scrapeOptions`) and format names. Such a page is held at the dearest price."""
    names = [k for k in body if k not in table.options]
    nested = body.get("scrapeOptions")
    if isinstance(nested, dict):
        names += [f"scrapeOptions.{k}" for k in nested if k not in table.options]
    for options in (body, nested if isinstance(nested, dict) else {}):
        names += [f"format {n}" for n in format_names(options) if n not in table.formats]
    return names


# --- what a page costs ----------------------------------------------------------------------


def _matches(item: PageItem, options: Body, formats: list[tuple[str, Mapping[str, Any]]]) -> bool:
    if item.format is not None:
        for name, spec in formats:
            if name != item.format:
                continue
            if item.modes is None:
                return True
            legacy = options.get(f"{name}Options")  # v1: changeTrackingOptions.modes
            modes = spec.get("modes") or (legacy.get("modes") if isinstance(legacy, dict) else None)
            if isinstance(modes, list) and item.modes in modes:
                return True
        return False
    assert item.option is not None
    value = options.get(item.option)
    if item.equals is not None:
        return value == item.equals
    return value not in (None, False, 0, "", [], {})


def page_price(table: PriceTable, options: Body) -> int:
    """What one page scraped with these options costs by the table (PDF pages aside): its
    dearest base (1, json 5, ...) plus each surcharge once."""
    formats = _formats(options)
    return price_of(i for i in table.priced if _matches(i, options, formats))


def held_page(table: PriceTable, endpoint: str, body: Body) -> int:
    """The price a page of this request is held at: the table's, or its dearest page when the
    request asks for anything the table does not know, or runs an agent."""
    if unknown(table, endpoint, body) or asks_agent(endpoint, body):
        return table.dearest_page
    return page_price(table, page_options(endpoint, body))


def most_a_page(table: PriceTable, endpoint: str, body: Body) -> int:
    """The most one page of this request can cost: the dearest page, or the agent's bound."""
    return table.agent_page_max if asks_agent(endpoint, body) else table.dearest_page


def _scraped(body: Body) -> bool:
    nested = body.get("scrapeOptions")
    return isinstance(nested, dict) and bool(format_names(nested))


def _search_results(table: PriceTable, results: int, fronted: bool) -> int:
    """Credits for `results` search results: the fronted build's rule, or the dearest."""
    rule = table.rule("search")
    if fronted and rule is not None:
        return rule.cost(results)
    return max((r.cost(results) for r in table.rules("search")), default=results)


def estimate(table: PriceTable, endpoint: str, body: Body) -> int:
    """Credits to hold before the work (spec §3), at least 1."""
    n = pages(endpoint, body)
    if endpoint in (*PAGED, "scrape", "extract"):
        cost = n * held_page(table, endpoint, body)
    elif endpoint == "search":
        scraped = held_page(table, endpoint, body) if _scraped(body) else 0
        cost = _search_results(table, n, fronted=False) + n * scraped
    elif endpoint in DEFAULT_MAX_URLS:
        cost = n
    else:
        rule = table.rule(endpoint)
        cost = rule.cost(1) if rule is not None and rule.unit == "call" else table.dearest_page
    return min(max(cost, 1), MAX_CREDITS)


def max_cost(table: PriceTable, endpoint: str, body: Body) -> int:
    """The most the request can be charged: a reported figure above it is capped. (Never
    below its estimate: `holds.plan_hold` takes the larger of the two.)"""
    n = pages(endpoint, body)
    if endpoint in (*PAGED, "scrape"):
        cost = n * most_a_page(table, endpoint, body)
    elif endpoint == "search":
        scraped = most_a_page(table, endpoint, body) if _scraped(body) else 0
        cost = _search_results(table, n, fronted=False) + n * scraped
    elif endpoint == "extract":  # an LLM reads its pages: bounded as an agent's
        cost = n * table.agent_page_max
    elif endpoint in DEFAULT_MAX_URLS:
        cost = n
    else:
        rule = table.rule(endpoint)
        cost = max(table.dearest_page, rule.cost(1) if rule is not None else 0)
    return min(max(cost, 1), MAX_CREDITS)


def pdf_allowance(table: PriceTable, endpoint: str, body: Body, payload: object) -> int:
    """The PDF pages a scrape's document says it had beyond its first (1 credit each, §3), at
    most the table's `pdf_pages_max`: what a scrape may cost above its dearest page. One
    document only (a scrape answers one), and none where PDFs are not parsed."""
    options = page_options(endpoint, body)
    if endpoint != "scrape" or options.get("parsePDF") is False or options.get("parsers") == []:
        return 0
    found = _pdf_pages(payload)[:1]
    return sum(min(max(n - 1, 0), table.pdf_pages_max - 1) for n in found)


def _pdf_pages(payload: object) -> list[int]:
    found = []
    for doc in _documents(payload):
        meta = doc.get("metadata")
        n = _count(meta.get("numPages")) if isinstance(meta, dict) else None
        if n is not None:
            found.append(n)
    return found


# --- what answers say they cost -------------------------------------------------------------


class Unbelievable(ValueError):
    """A reported figure that is not a count of credits: the answer is relayed, the cost table
    charged."""


def _documents(payload: object) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return []
    data = payload.get("data")
    docs = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    if isinstance(data, dict) and any(isinstance(data.get(k), list) for k in SEARCH_KINDS):
        docs = [d for k in SEARCH_KINDS if isinstance(data.get(k), list) for d in data[k]]
    return [d for d in docs if isinstance(d, dict)]


def reported_cost(payload: object) -> int | None:
    """What a Firecrawl response says it cost: a top-level creditsUsed, else the sum of its
    documents' metadata.creditsUsed; None when it says nothing. Unbelievable if a figure is
    not a whole number of credits (negative, fractional, text). A figure may be huge: the
    caller caps it (`max_cost`)."""
    if not isinstance(payload, dict):
        return None
    if payload.get("creditsUsed") is not None:
        return _checked(payload["creditsUsed"])
    found = [
        _checked(d["metadata"]["creditsUsed"])
        for d in _documents(payload)
        if isinstance(d.get("metadata"), dict) and d["metadata"].get("creditsUsed") is not None
    ]
    return sum(found) if found else None


def _checked(value: object) -> int:
    count = _count(value)
    if count is None or count < 0:
        raise Unbelievable(f"creditsUsed {value!r} is not a whole number of credits")
    return count


def reported_job_cost(payload: Mapping[str, Any]) -> int | None:
    """What a job's status says it has cost in all: creditsUsed, or for extract its tokens
    (tokens / 15, rounded up); None when it says nothing. Unbelievable when not a count."""
    if payload.get("creditsUsed") is not None:
        return _checked(payload["creditsUsed"])
    if payload.get("tokensUsed") is not None:
        return -(-_checked(payload["tokensUsed"]) // TOKENS_PER_CREDIT)
    return None


def figureless_cost(table: PriceTable, endpoint: str, body: Body, payload: object) -> int:
    """A synchronous answer that reports nothing, charged by §3's rule from what it shows:
    map 1 a call; v1 search per result (the fronted build's rule) plus each scraped result's
    page; a scrape its page; an operator's endpoint its rule, else the dearest page."""
    if endpoint == "scrape":
        return held_page(table, endpoint, body)
    if endpoint == "search":
        count = len(_documents(payload))
        scraped = held_page(table, endpoint, body) if _scraped(body) else 0
        return _search_results(table, count, fronted=True) + count * scraped
    rule = table.rule(endpoint)
    if rule is not None and rule.unit == "call":
        return rule.cost(1)
    return estimate(table, endpoint, body)


def llmstxt_urls(text: object) -> int:
    """URLs an llms.txt lists: one `- [title](url)` line per page summarised."""
    if not isinstance(text, str):
        return 0
    return sum(1 for line in text.splitlines() if line.lstrip().startswith("- [") and "](" in line)


def figureless_job_cost(endpoint: str, payload: Mapping[str, Any], cap: int | None) -> int | None:
    """A job whose status carries no figure, charged by §3's rule once it has completed:
    llms.txt the URLs its text lists, deep research the URLs it analysed (`totalUrls`, else its
    sources), each at most its `maxUrls` (`cap`); failed work is free. None: nothing to say yet
    (still running, or an endpoint that reports its own figures)."""
    status = payload.get("status")
    if endpoint not in DEFAULT_MAX_URLS or status not in ("completed", "failed"):
        return None
    if status == "failed":
        return 0
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    if endpoint == "llmstxt":
        found = llmstxt_urls(data.get("llmstxt"))
    else:
        total = _count(payload.get("totalUrls"))
        sources = payload.get("sources", data.get("sources"))
        found = total if total is not None else len(sources) if isinstance(sources, list) else 0
    found = max(found, 0)
    return found if cap is None else min(found, cap)
