"""The edge: one spelling per request, and CORS as Firecrawl answers it."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from creditgate.web.edge import NON_CANONICAL, is_canonical


@pytest.mark.parametrize(
    "target",
    [
        b"/v2/scrape",
        b"/v2/crawl/0f1e2d3c-aaaa-bbbb-cccc-111122223333",
        b"/v1/deep-research",
        b"/openapi.json",
        b"/",
    ],
)
def test_canonical_paths_pass(target: bytes) -> None:
    assert is_canonical(target)


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/../admin/KEY/queues",
        b"/v1/%2e%2e/admin",
        b"/v2/..%2f..%2fadmin",
        b"/v1%2F..%2Fadmin",
        b"/v1/scrape;/../../admin",
        b"/v2/x/../crawl",
        b"/v2/./crawl",
        b"/v2/crawl/",
        b"//v2/crawl",
        b"/v2//crawl",
        b"/v2/crawl\\x",
        b"/v2/%5ccrawl",
        b"/v2/crawl%00",
        b"/v2/cr\x00awl",
        b"/v2/.hidden",
        b"http://evil.example/v1/../admin/X",
        b"http://evil.example/v2/scrape",
        b"*",
        b"",
    ],
)
def test_every_other_spelling_is_refused(target: bytes) -> None:
    assert not is_canonical(target)


def test_a_non_canonical_target_is_400_before_anything_else(client: TestClient) -> None:
    response = client.get("/v2/team/credit-usage/")  # no Authorization: still 400, not 401
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": NON_CANONICAL}
    assert response.headers["access-control-allow-origin"] == "*"


def test_a_preflight_is_204_without_authentication(client: TestClient) -> None:
    response = client.options(
        "/v2/team/credit-usage",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert "POST" in response.headers["access-control-allow-methods"]


def test_every_answer_carries_the_allowed_origin(client: TestClient) -> None:
    unauthorized = client.get("/v2/team/credit-usage")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == "*"
