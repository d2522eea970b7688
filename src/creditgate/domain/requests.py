"""Whether a Firecrawl request is well-formed enough to be priced, checked before any hold.

The upstream validates everything else; what is checked here is what the hold depends on: a
page count that is not a positive integer within bounds would otherwise be held at a default
and forwarded as it is (`"limit": 1e12` held 10,000 and ran unbounded). Problems are reported
in Firecrawl's own "Bad Request" shape: a list of zod-like issues.
"""

from __future__ import annotations

from collections.abc import Sequence

from creditgate.domain.pricing import MAX_PAGES

Issue = dict[str, object]
# Firecrawl appends a batch's URLs to the job `appendToId` names, of any team behind the shared
# upstream key: its pages would be billed to that job's hold, not this request's.
APPEND_REFUSED = "appendToId is not supported through this gateway: start a new batch scrape"

# Counts that may be 0 (Firecrawl's zod schema takes any number for a crawl's limit; 0 still
# crawls its start page): the rest must be at least 1.
_ZERO_ALLOWED = {("crawl", "limit")}
# Fields holding a count of pages, results or URLs, by endpoint.
_COUNTS = {
    "crawl": ("limit", "maxConcurrency"),
    "search": ("limit",),
    "extract": ("limit",),
    "llmstxt": ("maxUrls",),
    "deep_research": ("maxUrls", "maxDepth"),
    "batch_scrape": ("maxConcurrency",),
}


def problems(endpoint: str, body: object) -> list[Issue]:
    """What is wrong with a metered request's body; [] when it can be priced."""
    if not isinstance(body, dict):
        return [_issue("invalid_type", [], "Expected object, received " + _kind(body))]
    found: list[Issue] = []
    for name in _COUNTS.get(endpoint, ()):
        if name in body:
            least = 0 if (endpoint, name) in _ZERO_ALLOWED else 1
            found += _count_problems(name, body[name], least)
    if endpoint == "batch_scrape":
        found += _url_list_problems(body.get("urls"))
        if "appendToId" in body:  # it adds pages to a job whose hold is another request's
            found.append(_issue("custom", ["appendToId"], APPEND_REFUSED))
    nested = body.get("scrapeOptions")
    if nested is not None and not isinstance(nested, dict):
        found.append(_issue("invalid_type", ["scrapeOptions"], _expected("object", nested)))
    found += _formats_problems([], body)
    if isinstance(nested, dict):
        found += _formats_problems(["scrapeOptions"], nested)
    return found


def _formats_problems(at: list[object], options: dict[str, object]) -> list[Issue]:
    """Formats decide the price of a page: they must be a list to be priced."""
    formats = options.get("formats")
    if formats is None or isinstance(formats, list):
        return []
    return [_issue("invalid_type", [*at, "formats"], _expected("array", formats))]


def _count_problems(name: str, value: object, least: int) -> list[Issue]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [_issue("invalid_type", [name], _expected("integer", value))]
    if value < least:
        text = "greater than 0" if least else "greater than or equal to 0"
        return [_issue("too_small", [name], f"Number must be {text}")]
    if value > MAX_PAGES:
        return [_issue("too_big", [name], f"Number must be less than or equal to {MAX_PAGES}")]
    return []


def _url_list_problems(urls: object) -> list[Issue]:
    if not isinstance(urls, list):
        return [_issue("invalid_type", ["urls"], f"Expected array, received {_kind(urls)}")]
    if not urls:
        return [_issue("too_small", ["urls"], "Array must contain at least 1 element(s)")]
    if len(urls) > MAX_PAGES:
        return [_issue("too_big", ["urls"], f"Array must contain at most {MAX_PAGES} element(s)")]
    return [
        _issue("invalid_type", ["urls", i], f"Expected string, received {_kind(u)}")
        for i, u in enumerate(urls)
        if not isinstance(u, str)
    ]


def _expected(wanted: str, value: object) -> str:
    return f"Expected {wanted}, received {_kind(value)}"


def _issue(code: str, path: Sequence[object], message: str) -> Issue:
    return {"code": code, "path": list(path), "message": message}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
