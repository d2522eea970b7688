"""Reading `/metrics` as Prometheus does: parsed, one value per (name, labels)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Series, float]:
    """Every sample of a scrape: (sample name, its labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(base_url: str) -> dict[Series, float]:
    """GET /metrics of a live server, checked and parsed."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    return parse(checked(response))


def checked(response: httpx.Response) -> str:
    """A /metrics answer: 200 in the classic text format, without a token asked for."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def value(samples: Mapping[Series, float], name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Mapping[Series, float], route: str, status: int, outcome: str) -> float:
    """creditgate_http_requests_total for a route pattern, a status and an outcome, summed over
    methods."""
    want = {("route", route), ("status", str(status)), ("outcome", outcome)}
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "creditgate_http_requests_total" and want <= labels
    )
