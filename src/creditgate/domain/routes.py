"""The gateway's route table: the only requests it forwards (firecrawl-api.md §7).

One row per (method, path) Firecrawl serves, with its kind: what the gateway does with it. The
proxy, the property tests and the README all read this table; a request that matches no row is
a 404 and never reaches the upstream. The upstream path is built from the matched row and its
`{id}`, never taken from the client's string. Operators may add rows (CREDITGATE_ROUTES).

Matching is exact: the request path must already be canonical (`web/edge.py` refuses any other
spelling with 400), and case matters — `/v2/CRAWL` is no row, so it is a 404, where Express
would have started a crawl.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import orjson


class RouteKind(StrEnum):
    METERED = "metered"  # held by the cost table, forwarded, settled from the answer
    JOB_START = "job_start"  # held, forwarded, recorded as the team's job, followed to its end
    JOB_READ = "job_read"  # only the team that started the job
    JOB_CANCEL = "job_cancel"  # only the owner; the job is followed until its totals settle
    LIST = "list"  # answered from creditgate's own records of the team's jobs
    FREE = "free"  # authenticated, rate limited, forwarded, not charged
    ACCOUNT = "account"  # answered by creditgate (http/account.py), never forwarded
    HEALTH = "health"  # creditgate's own health, never forwarded


# Kinds an operator may add by configuration: the others are creditgate's own.
CONFIGURABLE = frozenset(
    {
        RouteKind.METERED,
        RouteKind.JOB_START,
        RouteKind.JOB_READ,
        RouteKind.JOB_CANCEL,
        RouteKind.FREE,
    }
)
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+|\{id\}")


@dataclass(frozen=True, slots=True)
class RouteRow:
    method: str
    path: str  # the exact spelling, `{id}` for a job id: "/v2/crawl/{id}"
    kind: RouteKind
    endpoint: str = ""  # the activity name (scrape, crawl, batch_scrape, ...); "" if none
    mode: str = "scrape"  # which of the plan's per-minute limits applies: scrape or crawl

    @property
    def version(self) -> str:
        return self.path.split("/")[1]

    def upstream_path(self, job_id: str | None) -> str:
        """The path sent upstream: the row's own spelling, with the validated id."""
        return self.path if job_id is None else self.path.replace("{id}", job_id)

    def status_path(self, job_id: str) -> str:
        """Where a job started by this row reports its status: the start path + /id."""
        return f"{self.path}/{job_id}"


def _rows(
    kind: RouteKind, method: str, paths: str, endpoint: str = "", mode: str = "scrape"
) -> list[RouteRow]:
    return [RouteRow(method, p, kind, endpoint, mode) for p in paths.split()]


K = RouteKind
ROUTES: tuple[RouteRow, ...] = (
    *_rows(K.METERED, "POST", "/v1/scrape /v2/scrape", "scrape"),
    *_rows(K.METERED, "POST", "/v1/map /v2/map", "map"),
    *_rows(K.METERED, "POST", "/v1/search /v2/search /v1/x402/search", "search"),
    *_rows(K.JOB_START, "POST", "/v1/crawl /v2/crawl", "crawl", "crawl"),
    *_rows(K.JOB_START, "POST", "/v1/batch/scrape /v2/batch/scrape", "batch_scrape", "crawl"),
    *_rows(K.JOB_START, "POST", "/v1/extract /v2/extract", "extract"),
    *_rows(K.JOB_START, "POST", "/v1/llmstxt", "llmstxt"),
    *_rows(K.JOB_START, "POST", "/v1/deep-research", "deep_research"),
    *_rows(K.JOB_READ, "GET", "/v1/crawl/{id} /v2/crawl/{id}", "crawl"),
    *_rows(K.JOB_READ, "GET", "/v1/crawl/{id}/errors /v2/crawl/{id}/errors", "crawl"),
    *_rows(K.JOB_READ, "GET", "/v1/batch/scrape/{id} /v2/batch/scrape/{id}", "batch_scrape"),
    *_rows(K.JOB_READ, "GET", "/v1/batch/scrape/{id}/errors", "batch_scrape"),
    *_rows(K.JOB_READ, "GET", "/v1/scrape/{id} /v2/scrape/{id}", "scrape"),
    *_rows(K.JOB_READ, "GET", "/v1/extract/{id} /v2/extract/{id}", "extract"),
    *_rows(K.JOB_READ, "GET", "/v1/llmstxt/{id}", "llmstxt"),
    *_rows(K.JOB_READ, "GET", "/v1/deep-research/{id}", "deep_research"),
    *_rows(K.JOB_READ, "GET", "/v1/checkJobStatus/{id}", "scrape"),
    *_rows(K.JOB_CANCEL, "DELETE", "/v1/crawl/{id} /v2/crawl/{id}", "crawl"),
    *_rows(K.JOB_CANCEL, "DELETE", "/v1/batch/scrape/{id} /v2/batch/scrape/{id}", "batch_scrape"),
    *_rows(K.LIST, "GET", "/v1/crawl/active /v2/crawl/active", "crawl"),
    *_rows(K.LIST, "GET", "/v1/crawl/ongoing /v2/crawl/ongoing", "crawl"),
    *_rows(K.FREE, "POST", "/v1/crawlWebsitePreview /v2/crawl/params-preview", "", "crawl"),
    *_rows(K.FREE, "GET", "/v1/keyAuth"),
    *_rows(
        K.ACCOUNT,
        "GET",
        " ".join(
            f"/{v}/{p}"
            for v in ("v1", "v2")
            for p in (
                "team/credit-usage",
                "team/credit-usage/historical",
                "team/token-usage",
                "team/token-usage/historical",
                "team/queue-status",
                "concurrency-check",
            )
        )
        + " /v2/team/activity",
    ),
    *_rows(K.HEALTH, "GET", "/v1/health/liveness /v1/health/readiness"),
)


@dataclass(frozen=True, slots=True)
class Match:
    row: RouteRow
    job_id: str | None = None


class RouteTable:
    """Rows indexed by (method, number of segments) for an exact, one-spelling match."""

    def __init__(self, rows: tuple[RouteRow, ...]) -> None:
        self.rows = rows
        self._index: dict[tuple[str, int], list[tuple[list[str], RouteRow]]] = {}
        for row in rows:
            parts = row.path.split("/")[1:]
            self._index.setdefault((row.method, len(parts)), []).append((parts, row))
        for bucket in self._index.values():  # literal rows first: /crawl/active before /{id}
            bucket.sort(key=lambda entry: entry[0].count("{id}"))

    def match(self, method: str, path: str) -> Match | None:
        parts = path.split("/")[1:]
        for pattern, row in self._index.get((method, len(parts)), ()):
            job_id = None
            for want, got in zip(pattern, parts, strict=True):
                if want == "{id}" and JOB_ID.fullmatch(got):
                    job_id = got
                elif want != got:
                    break
            else:
                return Match(row, job_id)
        return None


def parse_extra_routes(text: str | None) -> tuple[RouteRow, ...]:
    """Operator-added rows: a JSON list of {"method", "path", "kind", "endpoint", "mode"}.

    Raises ValueError with a readable reason for anything that is not a well-formed row.
    """
    if not text:
        return ()
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"CREDITGATE_ROUTES is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError("CREDITGATE_ROUTES must be a JSON list of routes")
    return tuple(_extra_row(item) for item in items)


def _extra_row(item: object) -> RouteRow:
    if not isinstance(item, dict):
        raise ValueError(f"a route must be an object: {item!r}")
    method, path = item.get("method"), item.get("path")
    kind, endpoint, mode = item.get("kind"), item.get("endpoint", ""), item.get("mode", "scrape")
    if method not in ("GET", "POST", "DELETE"):
        raise ValueError(f"route method must be GET, POST or DELETE: {item!r}")
    if not isinstance(path, str) or not path.startswith(("/v1/", "/v2/")):
        raise ValueError(f"route path must start with /v1/ or /v2/: {item!r}")
    if not all(_SEGMENT.fullmatch(s) for s in path.split("/")[1:]):
        raise ValueError(f"route path segments must be letters, digits, - or _: {item!r}")
    if kind not in {k.value for k in CONFIGURABLE}:
        names = ", ".join(sorted(k.value for k in CONFIGURABLE))
        raise ValueError(f"route kind must be one of {names}: {item!r}")
    if not isinstance(endpoint, str) or mode not in ("scrape", "crawl"):
        raise ValueError(f"route endpoint must be a string and mode scrape or crawl: {item!r}")
    return RouteRow(method, path, RouteKind(kind), endpoint, mode)


DEFAULT_TABLE = RouteTable(ROUTES)


def table_with(extra: tuple[RouteRow, ...]) -> RouteTable:
    """The built-in rows and an operator's own; a built-in row cannot be redefined."""
    known = {(r.method, r.path) for r in ROUTES}
    clashing = [r for r in extra if (r.method, r.path) in known]
    if clashing:
        raise ValueError(f"route {clashing[0].method} {clashing[0].path} is already in the table")
    return RouteTable(ROUTES + extra) if extra else DEFAULT_TABLE
