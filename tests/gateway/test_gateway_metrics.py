"""`/metrics` counts what went through the gateway, exactly: requests by route pattern, status
and outcome, credits charged once committed, upstream failures by kind."""

from __future__ import annotations

import httpx

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway, early_in_a_minute
from tests.gateway.test_gateway import remaining, scrape, small_plan, three_half_second_scrapes
from tests.helpers import bearer, team_with_key
from tests.metrics_support import Series, requests, value
from tests.metrics_support import scrape as read_metrics

CHARGED = "creditgate_credits_charged_total"


def moved(before: dict[Series, float], after: dict[Series, float]) -> dict[Series, float]:
    """The series a test moved, by how much (a counter's or a histogram's count only)."""
    names = ("creditgate_http_requests_total", CHARGED, "creditgate_upstream_errors_total")
    return {
        series: after[series] - before.get(series, 0.0)
        for series in after
        if series[0].startswith(names) and after[series] != before.get(series, 0.0)
    }


def test_admitted_scrapes_are_counted_with_their_route_pattern_and_the_credits_they_cost(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now())
    before = read_metrics(gateway.url)
    for n in range(3):
        assert scrape(gateway, key, f"https://example.com/{n}").status_code == 200
    assert scrape(gateway, key, "https://example.com/doc.pdf").status_code == 200  # 3 credits
    after = read_metrics(gateway.url)
    assert remaining(db, team.id) == 3000 - 6
    assert (
        requests(after, "/v2/scrape", 200, "admitted")
        - requests(before, "/v2/scrape", 200, "admitted")
        == 4
    )
    assert value(after, CHARGED) - value(before, CHARGED) == 6
    # The latency histogram counted the same four, under the same pattern.
    count = "creditgate_http_request_duration_seconds_count"
    labels = {"method": "POST", "route": "/v2/scrape"}
    assert value(after, count, **labels) - value(before, count, **labels) == 4
    # Upstream: four answers timed, no error.
    upstream = "creditgate_upstream_request_duration_seconds_count"
    assert value(after, upstream) - value(before, upstream) == 4


def test_refusals_are_counted_with_their_outcome_and_charge_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, key, _ = team_with_key(db, now(), plan=small_plan(db, credits=5, scrape_rpm=3))
    early_in_a_minute()
    before = read_metrics(gateway.url)
    assert scrape(gateway, key, "https://example.com").status_code == 200  # 1 of 5
    json_format = scrape(gateway, key, "https://example.com", formats=["json"])
    assert json_format.status_code == 402  # holds 5, 4 are left
    assert scrape(gateway, key, "https://example.com").status_code == 200  # 2 of 5
    assert scrape(gateway, key, "https://example.com").status_code == 429  # 4th this minute
    no_key = httpx.post(f"{gateway.url}/v2/scrape", json={"url": "https://a.b"})
    assert no_key.status_code == 401
    job = httpx.get(
        f"{gateway.url}/v2/crawl/0193e5f4-0000-7000-8000-000000000000", headers=bearer(key)
    )
    assert job.status_code == 404
    for path in ("/v2/no-such-route", "/v1/admin/x/queues", "/nothing/here", "/v2/%2e%2e/x"):
        assert httpx.get(f"{gateway.url}{path}", headers=bearer(key)).status_code in (400, 404)
    after = read_metrics(gateway.url)
    assert moved(before, after) == {
        ("creditgate_http_requests_total", _labels("POST", "/v2/scrape", 200, "admitted")): 2,
        ("creditgate_http_requests_total", _labels("POST", "/v2/scrape", 402, "no_credits")): 1,
        ("creditgate_http_requests_total", _labels("POST", "/v2/scrape", 429, "rate_limited")): 1,
        ("creditgate_http_requests_total", _labels("POST", "/v2/scrape", 401, "unauthorized")): 1,
        ("creditgate_http_requests_total", _labels("GET", "/v2/crawl/{id}", 404, "not_found")): 1,
        # Unknown paths, whatever they spell: one bounded label, never the path.
        ("creditgate_http_requests_total", _labels("GET", "(no route)", 404, "not_found")): 3,
        ("creditgate_http_requests_total", _labels("GET", "(no route)", 400, "bad_request")): 1,
        # The scrape before was answered before `after` read it.
        ("creditgate_http_requests_total", _labels("GET", "/metrics", 200, "admitted")): 1,
        (CHARGED, frozenset()): 2,
    }
    assert remaining(db, team.id) == 3


def _labels(method: str, route: str, status: int, outcome: str) -> frozenset[tuple[str, str]]:
    return frozenset(
        {("method", method), ("route", route), ("status", str(status)), ("outcome", outcome)}
    )


def test_a_request_that_waited_in_the_queue_is_counted_as_queued_and_a_full_queue_too(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    gateway.ctx.queue_room = 1  # one waits, the next finds the queue full
    _, key, _ = team_with_key(db, now(), plan=small_plan(db, concurrency=1))
    before = read_metrics(gateway.url)
    answers = three_half_second_scrapes(gateway, key)
    assert [a.status_code for a in answers] == [200, 200, 429]
    after = read_metrics(gateway.url)
    for outcome, status in (("admitted", 200), ("queued", 200), ("queue_full", 429)):
        delta = requests(after, "/v2/scrape", status, outcome)
        assert delta - requests(before, "/v2/scrape", status, outcome) == 1, outcome


def test_upstream_failures_are_counted_by_kind_and_charge_nothing(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, _ = team_with_key(db, now())
    before = read_metrics(gateway.url)
    assert scrape(gateway, key, "https://example.com/slow").status_code == 504
    assert scrape(gateway, key, "https://example.com/drop").status_code == 502
    after = read_metrics(gateway.url)
    errors = "creditgate_upstream_errors_total"
    for kind, n in (("timeout", 1), ("dropped", 1), ("connect", 0), ("5xx", 0)):
        assert value(after, errors, kind=kind) - value(before, errors, kind=kind) == n, kind
    for status in (502, 504):
        delta = requests(after, "/v2/scrape", status, "upstream_failed")
        assert delta - requests(before, "/v2/scrape", status, "upstream_failed") == 1
    assert value(after, CHARGED) == value(before, CHARGED)
