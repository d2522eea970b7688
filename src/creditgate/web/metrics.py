"""What the HTTP faces and the upstream client report to Prometheus (services/metrics.py holds
the registry, the ledger's metrics and the scrape).

  creditgate_http_requests_total{method,route,status,outcome}
  creditgate_http_request_duration_seconds{method,route}      (histogram)
  creditgate_upstream_request_duration_seconds                (histogram: to the answer's head)
  creditgate_upstream_errors_total{kind}
  creditgate_upstream_figures_capped_total{endpoint}  (a reported cost above the most it could be)

`route` is the matched route pattern (`/v2/scrape`, `/admin/teams/{id}`), never the path a client
sent; a request no route matched is counted under UNMATCHED. `method` is one of METHODS or
`other`. Every label value comes from a closed set, so a client cannot add series.

On the hot path a request costs one dictionary lookup for its labelled children (cached here)
and an increment and an observation: no label is resolved twice.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Final

from prometheus_client import Counter, Histogram

from creditgate.services.metrics import REGISTRY

UNMATCHED: Final = "(no route)"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: from a fast account read to a scrape the upstream takes minutes over.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Outcome(StrEnum):
    """What became of a request, beyond its status."""

    ADMITTED = "admitted"  # answered (a 1xx to 3xx) without waiting
    QUEUED = "queued"  # answered after waiting in the concurrency queue
    BAD_REQUEST = "bad_request"  # 400, 405, 408, 409, 413, ...: refused for what it asked
    UNAUTHORIZED = "unauthorized"  # 401, 403: no, or no valid, key or token
    NO_CREDITS = "no_credits"  # 402
    NOT_FOUND = "not_found"  # 404
    RATE_LIMITED = "rate_limited"  # 429: requests per minute
    QUEUE_FULL = "queue_full"  # 429: the concurrency queue was full
    QUEUE_TIMEOUT = "queue_timeout"  # 429: it waited in the queue for as long as it may
    UPSTREAM = "upstream"  # the upstream's own 4xx or 5xx, passed through
    UPSTREAM_FAILED = "upstream_failed"  # creditgate's 502/504: no answer from the upstream
    UNAVAILABLE = "unavailable"  # 503: the database (or a dependency) is unavailable
    ERROR = "error"  # any other 5xx


def outcome_of(status: int, noted: str | None) -> str:
    """The outcome a handler noted (fields(request).outcome), else the one its status says."""
    if noted is not None:
        return noted
    if status < 400:
        return Outcome.ADMITTED
    return _BY_STATUS.get(status, Outcome.BAD_REQUEST if status < 500 else Outcome.ERROR)


_BY_STATUS: Final = {
    401: Outcome.UNAUTHORIZED,
    403: Outcome.UNAUTHORIZED,
    402: Outcome.NO_CREDITS,
    404: Outcome.NOT_FOUND,
    429: Outcome.RATE_LIMITED,
    503: Outcome.UNAVAILABLE,
}

REQUESTS: Final = Counter(
    "creditgate_http_requests",
    "HTTP requests answered, by method, route pattern, status and outcome.",
    ["method", "route", "status", "outcome"],
    registry=REGISTRY,
)
REQUEST_SECONDS: Final = Histogram(
    "creditgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route pattern.",
    ["method", "route"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_SECONDS: Final = Histogram(
    "creditgate_upstream_request_duration_seconds",
    "Time from sending a request to the upstream Firecrawl to the head of its answer.",
    buckets=BUCKETS,
    registry=REGISTRY,
)
UPSTREAM_ERRORS: Final = Counter(
    "creditgate_upstream_errors",
    "Upstream calls that failed, by kind: timeout, connect, dropped (the answer broke off), "
    "5xx (the upstream answered a server error).",
    ["kind"],
    registry=REGISTRY,
)

FIGURES_CAPPED: Final = Counter(
    "creditgate_upstream_figures_capped",
    "Costs the upstream reported above the most the request could cost (its pages at the "
    "price table's dearest page), charged at that bound instead, by endpoint.",
    ["endpoint"],
    registry=REGISTRY,
)

_requests: dict[tuple[str, str, int, str], Counter] = {}
_durations: dict[tuple[str, str], Histogram] = {}


def observe_request(method: str, route: str, status: int, outcome: str, seconds: float) -> None:
    """Count one answered request and its duration (RequestLog calls it for every request)."""
    method = method if method in METHODS else "other"
    key = (method, route, status, outcome)
    counter = _requests.get(key)
    if counter is None:  # dict writes are atomic: a race makes the same child twice, harmlessly
        counter = _requests[key] = REQUESTS.labels(method, route, str(status), outcome)
    counter.inc()
    histogram = _durations.get((method, route))
    if histogram is None:
        histogram = _durations[(method, route)] = REQUEST_SECONDS.labels(method, route)
    histogram.observe(seconds)


class UpstreamError(StrEnum):
    TIMEOUT = "timeout"
    CONNECT = "connect"
    DROPPED = "dropped"
    SERVER_ERROR = "5xx"


_upstream_errors: Final = {kind: UPSTREAM_ERRORS.labels(kind.value) for kind in UpstreamError}


def upstream_failed(kind: UpstreamError) -> None:
    _upstream_errors[kind].inc()


def upstream_answered(started: float, status: int) -> None:
    """The head of an upstream answer arrived (`started`: time.perf_counter() at sending)."""
    UPSTREAM_SECONDS.observe(time.perf_counter() - started)
    if status >= 500:
        _upstream_errors[UpstreamError.SERVER_ERROR].inc()


def figure_capped(endpoint: str) -> None:
    """A reported cost was above what the request could cost, and was capped. `endpoint` is a
    route table row's (a closed set)."""
    FIGURES_CAPPED.labels(endpoint or "other").inc()


QUEUED_STARTS: Final = Counter(
    "creditgate_queued_starts",
    "Job starts that found no slot free, by event: accepted (held and queued), started "
    "upstream, cancelled before they started, failed (refused upstream or here, or their "
    "start abandoned by a process that died).",
    ["event"],
    registry=REGISTRY,
)
QUEUED_EVENTS: Final = ("accepted", "started", "cancelled", "failed")
_queued: Final = {event: QUEUED_STARTS.labels(event) for event in QUEUED_EVENTS}


def queued_start(event: str) -> None:
    _queued[event].inc()
