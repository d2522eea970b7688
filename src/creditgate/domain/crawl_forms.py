"""A v2 crawl written as the v1 crawl that a Firecrawl build stores and runs the same way.

Why: the 2025-08 build's v2 crawl fails with a 500 whenever its body has `maxConcurrency` in
self-host mode (`controllers/v2/crawl.ts:142` reads `req.acuc.concurrency`, undefined there),
and `maxConcurrency` is how creditgate holds a crawl's pages in flight to the team's slots. Its
v1 crawl takes the field. Both controllers save the same stored crawl (crawler options in the
legacy form, scrape options in v2's form: v1's are converted by `fromV1ScrapeOptions`) and queue
the same kickoff, so a v2 crawl whose every option has an exact v1 spelling can be started
through v1 and read, paged and cancelled through v2 as if v2 had started it.

"Exact" is judged against that build's zod schemas: where v1's default differs from v2's, the
v2 value is written out (`skipTlsVerification`, `proxy`, `maxAge`, `maxDepth`); options with no
v1 spelling (`prompt`, the changeTracking format, a screenshot's quality or viewport) have no v1
form, and neither has a body that is not a valid v2 crawl (the upstream says what is wrong).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Crawl fields spelled and meant the same in v1 and v2.
SAME_CRAWL_FIELDS = frozenset(
    {
        "url",
        "includePaths",
        "excludePaths",
        "maxDiscoveryDepth",
        "limit",
        "crawlEntireDomain",
        "allowExternalLinks",
        "allowSubdomains",
        "ignoreRobotsTxt",
        "deduplicateSimilarURLs",
        "ignoreQueryParameters",
        "regexOnFullURL",
        "delay",
        "origin",
        "integration",
        "webhook",
        "maxConcurrency",
        "zeroDataRetention",
    }
)
SAME_SCRAPE_FIELDS = frozenset(
    {
        "headers",
        "includeTags",
        "excludeTags",
        "onlyMainContent",
        "timeout",
        "waitFor",
        "mobile",
        "actions",
        "location",
        "skipTlsVerification",
        "removeBase64Images",
        "fastMode",
        "useMock",
        "blockAds",
        "proxy",
        "maxAge",
        "storeInCache",
        "__searchPreviewToken",
        "__experimental_omce",
        "__experimental_omceDomain",
    }
)
SAME_FORMATS = frozenset({"markdown", "html", "rawHtml", "links", "summary"})
V2_DEFAULTS: Mapping[str, object] = {  # where v1's default differs from v2's
    "skipTlsVerification": True,  # v1: false
    "proxy": "auto",  # v1: "basic"
    "maxAge": 2 * 24 * 60 * 60 * 1000,  # v1: 0; v2 leaves it unset, read as 2 days self-hosted
}
V2_MAX_DEPTH = 9999  # v2 crawls by discovery depth only; v1's maxDepth defaults to 10
NO_V1_FIELDS = {
    "prompt": "`prompt` (crawler options written by an LLM)",
}


@dataclass(frozen=True, slots=True)
class NoV1Form:
    """Why a v2 crawl has no exact v1 form. `invalid`: the body is no valid v2 crawl, so the
    upstream's own answer (a 400 naming the field) is the one to give."""

    reason: str
    invalid: bool = False


def as_v1_crawl(body: Mapping[str, object]) -> dict[str, object] | NoV1Form:
    """The v1 crawl body that the build stores and runs as it would this v2 crawl body."""
    if not isinstance(body.get("url"), str):
        return NoV1Form("no url", invalid=True)
    v1: dict[str, object] = {"maxDepth": V2_MAX_DEPTH}
    for name, value in body.items():
        if name in NO_V1_FIELDS:
            return NoV1Form(NO_V1_FIELDS[name])
        if name == "sitemap":
            if value not in ("skip", "include"):
                return NoV1Form("sitemap", invalid=True)
            v1["ignoreSitemap"] = value == "skip"
        elif name == "scrapeOptions":
            scrape = _v1_scrape_options(value)
            if isinstance(scrape, NoV1Form):
                return scrape
            v1[name] = scrape
        elif name in SAME_CRAWL_FIELDS:
            v1[name] = value
        else:
            return NoV1Form(f"unknown field {name!r}", invalid=True)
    v1.setdefault("scrapeOptions", _v1_scrape_options({}))
    return v1


def _v1_scrape_options(options: object) -> dict[str, object] | NoV1Form:
    if not isinstance(options, Mapping):
        return NoV1Form("scrapeOptions", invalid=True)
    v1: dict[str, object] = dict(V2_DEFAULTS)
    for name, value in options.items():
        if name == "formats":
            formats = _v1_formats(value)
            if isinstance(formats, NoV1Form):
                return formats
            v1.update(formats)
        elif name == "parsers":
            if not isinstance(value, list) or any(p != "pdf" for p in value):
                return NoV1Form("scrapeOptions.parsers", invalid=True)
            v1["parsePDF"] = "pdf" in value
        elif name in SAME_SCRAPE_FIELDS:
            v1[name] = value
        else:
            return NoV1Form(f"unknown scrape option {name!r}", invalid=True)
    return v1


def _v1_formats(formats: object) -> dict[str, object] | NoV1Form:
    """v2's formats (names or objects) as v1's names and per-format options."""
    if not isinstance(formats, list):
        return NoV1Form("scrapeOptions.formats", invalid=True)
    names: list[str] = []
    extra: dict[str, object] = {}
    for item in formats:
        spec = {"type": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            return NoV1Form("scrapeOptions.formats", invalid=True)
        kind = spec["type"]
        options = {k: v for k, v in spec.items() if k != "type"}
        if kind in SAME_FORMATS and not options:
            names.append(kind)
        elif kind == "screenshot" and set(options) <= {"fullPage"}:
            names.append("screenshot@fullPage" if options.get("fullPage") is True else "screenshot")
        elif kind == "json" and set(options) <= {"schema", "prompt"}:
            names.append("json")
            extra["jsonOptions"] = options
        elif kind == "screenshot":
            return NoV1Form("a screenshot's `quality` or `viewport`")
        elif kind == "changeTracking":
            return NoV1Form("the `changeTracking` format (v1 waits 5 s more on each page)")
        else:
            return NoV1Form(f"format {kind!r}", invalid=True)
    return {"formats": names, **extra}
