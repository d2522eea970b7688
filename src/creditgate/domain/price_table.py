"""The price table of firecrawl-api.md §3, as data: what a page and an operation cost.

Rows, not code, like the route table (domain/routes.py): each per-page item says what it costs,
how it is recognised in a request (a format, or an option and its value) and which Firecrawl
builds charge it; each operation says how its credits are counted. An operator adds the rows of
a newer release with CREDITGATE_PRICES (`parse_extra_prices`).

The table is for holding before the work and for answers that report nothing; what Firecrawl
reports is the truth to settle on (domain/pricing.py). Options and formats the table lists
at 0 credits are *known*: a page asking for anything the table does not know is held at the
table's dearest page, never at 1, since only a newer release can know what it costs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import orjson

BUILD_2025_08 = "2025-08"  # the self-hosted build of firecrawl-api.md §7 (commit 61e38dc8)
BUILD_LATER = "later"  # later releases (§3's right-hand column)
BUILDS = (BUILD_2025_08, BUILD_LATER)

TOKENS_PER_CREDIT = 15
FIRE1_CREDITS_PER_USD = 1800  # a FIRE-1 page costs ceil(its LLM spend in USD x 1800)
# The most one FIRE-1 agent page is believed to cost: $10 of LLM spend. An operator whose
# agents spend more raises it (CREDITGATE_PRICES {"agentPageMax": ...}).
AGENT_PAGE_MAX = 10 * FIRE1_CREDITS_PER_USD
# The most PDF pages a scraped document is believed to have (each after the first costs 1): a
# document stating more is charged as this many. An operator raises it ("pdfPagesMax").
PDF_PAGES_MAX = 100


class Effect(StrEnum):
    SET = "set"  # the page costs this at least (json: the page is 5, not 1 + 5)
    ADD = "add"  # the page costs this much more


@dataclass(frozen=True, slots=True)
class PageItem:
    """One row of §3's per-page table. Recognised by `format` (a requested format's name,
    with `modes` only if that format's modes include it) or by `option` (a request option
    that is set: true, non-empty, or equal to `equals` when given)."""

    item: str
    credits: int
    effect: Effect = Effect.ADD
    format: str | None = None
    option: str | None = None
    equals: str | None = None
    modes: str | None = None
    builds: tuple[str, ...] = BUILDS


@dataclass(frozen=True, slots=True)
class OperationRule:
    """How an operation's credits are counted: `credits` for every `per` units (rounded up),
    units being calls, results, URLs or tokens; `pages` rules add the page price of each."""

    operation: str
    credits: int
    per: int = 1
    unit: str = "call"  # call, page, result, url, token
    builds: tuple[str, ...] = BUILDS

    def cost(self, units: int) -> int:
        return self.credits * -(-max(units, 0) // self.per)


def _priced(*rows: PageItem) -> tuple[PageItem, ...]:
    return rows


def _free_formats(names: str) -> tuple[PageItem, ...]:
    return tuple(PageItem(f"{n} format", 0, format=n) for n in names.split())


def _free_options(names: str) -> tuple[PageItem, ...]:
    return tuple(PageItem(n, 0, option=n) for n in names.split())


L, E = (BUILD_LATER,), (BUILD_2025_08,)
PAGE_ITEMS: tuple[PageItem, ...] = (
    *_priced(
        PageItem("json format", 5, Effect.SET, format="json"),
        PageItem("json format (v1 extract)", 5, Effect.SET, format="extract"),
        PageItem("changeTracking json", 5, Effect.SET, format="changeTracking", modes="json"),
        PageItem("deterministicJson", 10, Effect.SET, format="deterministicJson", builds=L),
        PageItem("deterministicJson", 10, Effect.SET, option="deterministicJson", builds=L),
        PageItem("zeroDataRetention", 1, option="zeroDataRetention"),
        PageItem("stealth proxy", 4, option="proxy", equals="stealth", builds=E),
        PageItem("question/query format", 4, format="question", builds=L),
        PageItem("question/query format", 4, format="query", builds=L),
        PageItem("highlights format", 4, format="highlights", builds=L),
        PageItem("audio format", 4, format="audio", builds=L),
        PageItem("video format", 4, format="video", builds=L),
        PageItem("redactPII", 4, option="redactPII", builds=L),
        PageItem("lockdown", 4, option="lockdown", builds=L),
    ),
    # Known and free: the formats and options of the 2025-08 build's request schemas (v1 and
    # v2: scrape, batch scrape, crawl, map, search, extract, llmstxt, deep research).
    *_free_formats("markdown html rawHtml links screenshot screenshot@fullPage summary"),
    *_free_formats("changeTracking"),
    *_free_options(
        "formats headers includeTags excludeTags onlyMainContent timeout waitFor mobile"
        " parsers parsePDF actions location geolocation skipTlsVerification removeBase64Images"
        " fastMode useMock blockAds proxy maxAge storeInCache jsonOptions extract"
        " changeTrackingOptions __experimental_cache __searchPreviewToken __experimental_omce"
        " __experimental_omceDomain url urls origin integration webhook"
        " ignoreInvalidURLs maxConcurrency limit scrapeOptions includePaths excludePaths"
        " maxDepth maxDiscoveryDepth crawlEntireDomain allowBackwardLinks allowExternalLinks"
        " allowSubdomains ignoreRobotsTxt ignoreSitemap sitemap sitemapOnly deduplicateSimilarURLs"
        " ignoreQueryParameters regexOnFullURL delay prompt search includeSubdomains useIndex"
        " filterByPath query tbs filter sources categories lang country systemPrompt schema"
        " enableWebSearch urlTrace showSources __experimental_streamSteps"
        " __experimental_llmUsage __experimental_showSources __experimental_cacheKey"
        " __experimental_cacheMode __experimental_showCostTracking maxUrls showFullText cache"
        " __experimental_stream timeLimit analysisPrompt topic agent"
    ),
)

OPERATIONS: tuple[OperationRule, ...] = (
    OperationRule("scrape", 1, unit="page"),
    OperationRule("crawl", 1, unit="page"),
    OperationRule("batch_scrape", 1, unit="page"),
    OperationRule("map", 1),
    OperationRule("search", 1, 1, "result", builds=E),
    OperationRule("search", 2, 10, "result", builds=L),
    OperationRule("extract", 1, TOKENS_PER_CREDIT, "token"),
    OperationRule("llmstxt", 1, 1, "url"),
    OperationRule("deep_research", 1, 1, "url"),
)


@dataclass(frozen=True, slots=True)
class PriceTable:
    items: tuple[PageItem, ...] = PAGE_ITEMS
    operations: tuple[OperationRule, ...] = OPERATIONS
    # Which build's column prices answers that report nothing (v1 search): the build fronted.
    build: str = BUILD_2025_08
    agent_page_max: int = AGENT_PAGE_MAX
    pdf_pages_max: int = PDF_PAGES_MAX
    formats: frozenset[str] = field(init=False)  # every format it knows
    options: frozenset[str] = field(init=False)  # every option it knows
    priced: tuple[PageItem, ...] = field(init=False)  # the items that cost something
    dearest_page: int = field(init=False)

    def __post_init__(self) -> None:
        formats = frozenset(i.format for i in self.items if i.format is not None)
        options = frozenset(i.option for i in self.items if i.option is not None)
        object.__setattr__(self, "formats", formats)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "priced", tuple(i for i in self.items if i.credits))
        # The most a page can cost by the table: every item at once (PDF pages, FIRE-1 aside).
        object.__setattr__(self, "dearest_page", price_of(self.items))

    def rules(self, operation: str) -> list[OperationRule]:
        return [r for r in self.operations if r.operation == operation]

    def rule(self, operation: str) -> OperationRule | None:
        """The operation's rule in the build fronted (else any build's)."""
        found = self.rules(operation)
        fronted = [r for r in found if self.build in r.builds]
        best = fronted or found
        return best[0] if best else None


def price_of(items: Iterable[PageItem]) -> int:
    """A page with these items: its dearest base (1, json 5, ...) and each surcharge once
    (rows of one item, e.g. question/query, counted once)."""
    rows = list(items)
    base = max((i.credits for i in rows if i.effect is Effect.SET), default=1)
    surcharges = {i.item: i.credits for i in rows if i.effect is Effect.ADD}
    return max(base, 1) + sum(surcharges.values())


DEFAULT_PRICES = PriceTable()


# --- an operator's rows (CREDITGATE_PRICES) ----------------------------------------------------

_TABLE_FIELDS = {"pages", "operations", "build", "agentPageMax", "pdfPagesMax"}
_ITEM_FIELDS = {"item", "credits", "effect", "format", "option", "equals", "modes", "builds"}
_RULE_FIELDS = {"operation", "credits", "per", "unit", "builds"}
_UNITS = ("call", "page", "result", "url", "token")
MAX_ROW_CREDITS = 100_000


def parse_extra_prices(text: str | None) -> PriceTable:
    """The built-in table with an operator's rows: a JSON object with any of "pages" (per-page
    items), "operations" (operation rules), "build" (2025-08 or later), "agentPageMax" and
    "pdfPagesMax".

    Raises ValueError with a readable reason for anything that is not well-formed."""
    if not text:
        return DEFAULT_PRICES
    try:
        spec = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"CREDITGATE_PRICES is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or not set(spec) <= _TABLE_FIELDS:
        raise ValueError(f"CREDITGATE_PRICES must be an object of {sorted(_TABLE_FIELDS)}")
    pages, ops = spec.get("pages", []), spec.get("operations", [])
    if not isinstance(pages, list) or not isinstance(ops, list):
        raise ValueError('CREDITGATE_PRICES "pages" and "operations" must be lists')
    build = spec.get("build", BUILD_2025_08)
    if build not in BUILDS:
        raise ValueError(f"CREDITGATE_PRICES build must be one of {', '.join(BUILDS)}")
    agent = spec.get("agentPageMax", AGENT_PAGE_MAX)
    agent = _check_credits("agentPageMax", agent, minimum=1)
    pdf = _check_credits("pdfPagesMax", spec.get("pdfPagesMax", PDF_PAGES_MAX), minimum=1)
    return PriceTable(
        items=PAGE_ITEMS + tuple(_item(p) for p in pages),
        operations=tuple(_rule(o) for o in ops) + OPERATIONS,  # an operator's rule comes first
        build=build,
        agent_page_max=agent,
        pdf_pages_max=pdf,
    )


def _item(row: object) -> PageItem:
    if not isinstance(row, dict) or not set(row) <= _ITEM_FIELDS:
        raise ValueError(f"a page item is an object of {sorted(_ITEM_FIELDS)}: {row!r}")
    name, credits = row.get("item"), row.get("credits")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a page item needs a name: {row!r}")
    credits = _check_credits(f"item {name!r} credits", credits)
    effect = row.get("effect", "add")
    if effect not in ("add", "set"):
        raise ValueError(f"item {name!r}: effect must be add or set")
    fmt, option = row.get("format"), row.get("option")
    if (fmt is None) == (option is None):
        raise ValueError(f"item {name!r}: give exactly one of format and option")
    texts = {k: row.get(k) for k in ("format", "option", "equals", "modes")}
    for key, value in texts.items():
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 100):
            raise ValueError(f"item {name!r}: {key} must be a short string")
    return PageItem(
        name,
        credits,
        Effect(effect),
        format=fmt,
        option=option,
        equals=texts["equals"],
        modes=texts["modes"],
        builds=_builds(name, row.get("builds")),
    )


def _rule(row: object) -> OperationRule:
    if not isinstance(row, dict) or not set(row) <= _RULE_FIELDS:
        raise ValueError(f"an operation rule is an object of {sorted(_RULE_FIELDS)}: {row!r}")
    name = row.get("operation")
    if not isinstance(name, str) or not name:
        raise ValueError(f"an operation rule needs an operation: {row!r}")
    credits, per, unit = row.get("credits"), row.get("per", 1), row.get("unit", "call")
    credits = _check_credits(f"operation {name!r} credits", credits)
    per = _check_credits(f"operation {name!r} per", per, minimum=1)
    if unit not in _UNITS:
        raise ValueError(f"operation {name!r}: unit must be one of {', '.join(_UNITS)}")
    return OperationRule(name, credits, per, unit, _builds(name, row.get("builds")))


def _builds(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return BUILDS
    if not isinstance(value, list) or not value or not set(value) <= set(BUILDS):
        raise ValueError(f"{name!r}: builds must be a list of {', '.join(BUILDS)}")
    return tuple(value)


def _check_credits(what: str, value: object, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an integer")
    if not minimum <= value <= MAX_ROW_CREDITS:
        raise ValueError(f"{what} must be from {minimum} to {MAX_ROW_CREDITS}")
    return value
