"""Key lifecycle threats (docs/security.md §5): an expired or rotated-out key still accepted on
some face (account routes, gateway, dashboard sign-in, a dashboard session), a key's own rate
limit skipped by the gateway, last uses leaking to team keys, metadata injected into the
dashboard or grown without bound."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.domain.instants import now
from creditgate.services import keys
from creditgate.storage import key_rows as key_rows
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.gateway.conftest import Fake, Gateway, early_in_a_minute
from tests.helpers import bearer, team_with_key

INVALID = {"success": False, "error": "Unauthorized: Invalid token"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _expire(db: Database, key_id: str, at: int) -> None:
    """Set an expiry in the past directly (the services refuse one)."""
    with db.write() as conn:
        key_rows.update_key(conn, key_id, expires_at=at)


def _scrape(gw: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v2/scrape", json={"url": "https://example.com"}, headers=bearer(key), timeout=10
    )


def test_an_expired_key_gets_the_invalid_token_401_from_the_gateway_and_nothing_is_forwarded(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, key, key_id = team_with_key(db, now())
    assert _scrape(gateway, key).status_code == 200
    _expire(db, key_id, now() - 1)
    refused = _scrape(gateway, key)
    assert (refused.status_code, refused.json()) == (401, INVALID)
    crawl = httpx.get(f"{gateway.url}/v2/crawl/active", headers=bearer(key), timeout=10)
    assert (crawl.status_code, crawl.json()) == (401, INVALID)
    assert len(fake.state.requests) == 1


def test_a_rotated_out_key_is_refused_by_the_gateway_once_the_overlap_ends(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    _, old_key, old_id = team_with_key(db, now())
    rotation = keys.rotate_key(db, old_id, now(), overlap_seconds=0)
    refused = _scrape(gateway, old_key)
    assert (refused.status_code, refused.json()) == (401, INVALID)
    assert _scrape(gateway, rotation.new.secret).status_code == 200


def test_the_gateway_applies_a_keys_own_rpm_before_forwarding(
    db: Database, fake: Fake, gateway: Gateway
) -> None:
    team, _, _ = team_with_key(db, now())
    limited = keys.create_key(db, team.id, now(), name="limited", rpm=1).secret
    early_in_a_minute()
    assert _scrape(gateway, limited).status_code == 200
    second = _scrape(gateway, limited)
    assert second.status_code == 429
    assert second.json()["error"].startswith(
        "Rate limit exceeded. Consumed (req/min): 1, Remaining (req/min): 0."
    )
    assert len(fake.state.requests) == 1


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


def _sign_in(web: TestClient, token: str) -> int:
    page = web.get("/dashboard/signin")
    found = CSRF.search(page.text)
    assert found is not None
    answer = web.post("/dashboard/signin", data={"csrf": found.group(1), "token": token})
    return answer.status_code


def test_an_expired_key_cannot_sign_in_and_ends_its_dashboard_session_at_the_instant(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team, _, _ = team_with_key(db, clock.now)
    created = keys.create_key(db, team.id, clock.now, name="temp", expires_at=clock.now + 60_000)
    assert _sign_in(web, created.secret) == 303
    assert web.get(f"/dashboard/teams/{team.id}").status_code == 200
    clock.advance(59_999)
    assert web.get(f"/dashboard/teams/{team.id}").status_code == 200
    clock.advance(1)
    assert web.get(f"/dashboard/teams/{team.id}").status_code == 303  # back to sign-in
    web.cookies.clear()
    assert _sign_in(web, created.secret) == 401  # as an unknown key is answered:
    assert _sign_in(web, "fc-" + "0" * 32) == 401


def test_a_cached_snapshot_does_not_outlive_an_expiry_set_by_another_process(
    client: TestClient, db: Database, database_url: str, clock: Clock
) -> None:
    """The kept snapshot (SQLite) is read again after any commit: an expiry set elsewhere, even
    to an instant before the snapshot's own `until`, refuses the key at that instant."""
    _, key, key_id = team_with_key(db, clock.now)
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    other = Database(database_url)
    try:
        keys.update_key(other, key_id, clock.now, expires_at=clock.now + 1_000)
    finally:
        other.dispose()
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    clock.advance(1_000)
    refused = client.get("/v2/team/credit-usage", headers=bearer(key))
    assert (refused.status_code, refused.json()) == (401, INVALID)


def test_last_uses_and_metadata_reach_no_team_key_route(
    ctx: AppContext, client: TestClient, db: Database, clock: Clock
) -> None:
    """Last uses and metadata are the operator's: the admin API, the CLI and the dashboard
    show them; no Firecrawl route a team key calls carries them."""
    _, key, key_id = team_with_key(db, clock.now)
    keys.update_key(db, key_id, clock.now, metadata={"owner": "secret-owner-name"})
    client.get("/v2/team/credit-usage", headers=bearer(key))
    ctx.key_uses.flush(db)
    for path in (
        "/v2/team/credit-usage",
        "/v1/team/credit-usage",
        "/v2/team/credit-usage/historical?byApiKey=true",
        "/v2/team/queue-status",
        "/v2/team/activity",
    ):
        text = client.get(path, headers=bearer(key)).text
        assert "lastUsed" not in text and "last_used" not in text, path
        assert "secret-owner-name" not in text, path


def test_metadata_cannot_inject_markup_into_the_dashboard(
    web: TestClient, db: Database, clock: Clock
) -> None:
    team, key, key_id = team_with_key(db, clock.now)
    keys.update_key(
        db, key_id, clock.now, metadata={"<img src=x onerror=alert(1)>": "<script>x</script>"}
    )
    assert _sign_in(web, key) == 303
    page = web.get(f"/dashboard/teams/{team.id}").text
    assert "<script>x</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_oversized_or_nested_metadata_is_refused_by_the_admin_api(client: TestClient) -> None:
    team = client.post(
        "/admin/teams", headers=bearer(ADMIN_TOKEN), json={"name": "acme", "plan": "hobby"}
    ).json()["data"]
    for metadata in ({"a": "x" * 3000}, {"a": {"b": {"c": 1}}}, {"k": ["x"] * 10}):
        answer = client.post(
            f"/admin/teams/{team['id']}/keys",
            headers=bearer(ADMIN_TOKEN),
            json={"metadata": metadata},
        )
        assert answer.status_code == 400, metadata
    assert (
        client.get(f"/admin/teams/{team['id']}/keys", headers=bearer(ADMIN_TOKEN)).json()["data"]
        == []
    )
