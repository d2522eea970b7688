"""Gateway requests answered outside the router (http/hot.py) answer as the full stack does:
same statuses, bodies, headers and charges, for every spelling the edge or the router would
treat apart — and the canonical ones really skip the stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Router
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN
from tests.gateway.conftest import UPSTREAM_KEY, Fake, known_without_a_probe
from tests.helpers import bearer, team_with_key
from tests.security.support import make_plan

# (method, path with query, body, extra headers)
Ask = tuple[str, str, dict[str, Any] | None, dict[str, str]]

SCRAPE = {"url": "https://site.example/a"}
ASKS: list[Ask] = [
    ("POST", "/v2/scrape", SCRAPE, {}),
    ("POST", "/v1/scrape", SCRAPE, {"Origin": "https://app.example", "X-Request-Id": "r-1"}),
    ("POST", "/v2/scrape", {"url": 7}, {}),  # refused by the body check
    ("POST", "/v2/scrape", SCRAPE, {"Authorization": "Bearer fc-nope"}),
    ("POST", "/v2/nothing-here", SCRAPE, {}),  # no row of the route table
    ("POST", "/v2//scrape", SCRAPE, {}),  # not canonical: the edge's 400
    ("POST", "/v2/scrape/", SCRAPE, {}),
    ("POST", "/v2/scrape?x=%00", SCRAPE, {}),  # a NUL: the edge's 400
    ("POST", "/v2/team/credit-usage", None, {}),  # an account path: never forwarded
    ("GET", "/v1/health/liveness", None, {}),  # creditgate's own route under /v1/
    ("HEAD", "/v2/scrape", None, {}),
    ("OPTIONS", "/v2/scrape", None, {"Origin": "https://app.example"}),
    ("POST", "/v2/map", {"url": "https://site.example"}, {}),
    ("GET", "/v2/crawl/00000000-0000-4000-8000-000000000000", None, {}),  # another's: 404
]
VOLATILE = {"x-request-id", "date", "content-length", "server"}


@pytest.fixture
def apps(db: Database, fake: Fake) -> Iterator[tuple[TestClient, TestClient]]:
    """Two gateways on one ledger and one upstream: with the hot path, and without it."""
    clients = []
    for hot in (True, False):
        ctx = AppContext(
            db=db,
            admin_token=ADMIN_TOKEN,
            upstream=Upstream(fake.url, UPSTREAM_KEY, timeout_s=5.0),
            cors_origins=("https://app.example",),
        )
        known_without_a_probe(ctx, fake)
        app = create_app(ctx)
        if not hot:
            app.hot_gateway = None  # type: ignore[attr-defined]
        clients.append(TestClient(app, raise_server_exceptions=False))
    with clients[0] as hot_client, clients[1] as full_client:
        yield hot_client, full_client


def _answer(client: TestClient, ask: Ask, key: str) -> tuple[int, Any, dict[str, str]]:
    method, path, body, extra = ask
    response = client.request(method, path, json=body, headers={**bearer(key), **extra})
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.content
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        payload["data"].pop("metadata", None)  # a scrape's own id and times
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status_code, payload, headers


def test_every_spelling_answers_as_the_full_stack_does(
    apps: tuple[TestClient, TestClient], db: Database, fake: Fake
) -> None:
    hot, full = apps
    _, key, _ = team_with_key(db, _now(), plan=make_plan(db, "roomy", 1000, scrape_rpm=1000))
    for ask in ASKS:
        assert _answer(hot, ask, key) == _answer(full, ask, key), ask
    # Each app forwarded the same: two v2 scrapes (one the upstream refused: its 400, not
    # charged), a v1 scrape and a map; each charged the same three credits.
    sent = [(m, p) for m, p, *_ in fake.state.requests]
    assert sent.count(("POST", "/v2/scrape")) == 4 and sent.count(("POST", "/v1/scrape")) == 2
    assert sent.count(("POST", "/v2/map")) == 2 and len(sent) == 8
    assert _used(hot, key) == 2 * (1 + 1 + 1)


def test_a_canonical_gateway_request_skips_the_router(
    apps: tuple[TestClient, TestClient], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    hot, full = apps
    _, key, _ = team_with_key(db, _now())
    routed: list[str] = []
    original = Router.__call__

    async def counting(self: Router, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", counting)
    assert hot.post("/v2/scrape", json=SCRAPE, headers=bearer(key)).status_code == 200
    assert routed == []
    assert full.post("/v2/scrape", json=SCRAPE, headers=bearer(key)).status_code == 200
    assert hot.post("/v2/team/credit-usage", headers=bearer(key)).status_code == 404
    assert routed == ["/v2/scrape", "/v2/team/credit-usage"]


def _used(client: TestClient, key: str) -> int:
    data = client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]
    used: int = data["planCredits"] - data["remainingCredits"]
    return used


def _now() -> Any:
    from creditgate.domain.instants import now

    return now()
