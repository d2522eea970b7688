"""The account routes' reads, answered outside the router (http/hot.py), answer as before:
same bodies, same headers, same refusals, and never a stale balance."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.services import keys
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, charge, team_with_key


@pytest.fixture
def second(database_url: str, clock: Clock) -> Iterator[TestClient]:
    """Another app instance (another process, as far as the first can tell) on the same
    database, with a Database of its own."""
    other = Database(database_url)
    app = create_app(AppContext(db=other, admin_token=ADMIN_TOKEN, clock=clock))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    other.dispose()


def test_a_charge_through_another_instance_shows_in_the_next_answer(
    client: TestClient, second: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    paths = ("/v2/team/credit-usage", "/v1/team/credit-usage", "/v2/team/token-usage")
    before = [client.get(p, headers=bearer(key)).json()["data"] for p in paths]
    assert before == [client.get(p, headers=bearer(key)).json()["data"] for p in paths]
    assert before[0]["remainingCredits"] == 3000
    charged = second.post(
        "/admin/charges",
        headers=bearer(ADMIN_TOKEN),
        json={"key": key, "credits": 120, "endpoint": "scrape"},
    )
    assert charged.status_code == 201, charged.text
    after = [client.get(p, headers=bearer(key)).json()["data"] for p in paths]
    assert after[0]["remainingCredits"] == 2880
    assert after[1]["remaining_credits"] == 2880
    assert after[2]["remainingTokens"] == 2880 * 15


def test_the_next_period_is_answered_when_it_starts(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    charge(db, key, 100, clock.now)
    first = client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]
    assert (first["remainingCredits"], first["billingPeriodEnd"]) == (
        2900,
        "2026-09-01T00:00:00.000Z",
    )
    clock.set("2026-09-01T00:00:00Z")
    later = client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]
    assert later == {
        "remainingCredits": 3000,
        "planCredits": 3000,
        "billingPeriodStart": "2026-09-01T00:00:00.000Z",
        "billingPeriodEnd": "2026-10-01T00:00:00.000Z",
    }


def test_a_hot_answer_has_the_headers_the_layers_it_skips_add(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    ctx = AppContext(db=db, clock=clock, cors_origins=("https://app.example",))
    caplog.set_level(logging.INFO, logger="creditgate.requests")
    with TestClient(create_app(ctx)) as client:
        allowed = client.get(
            "/v2/team/credit-usage",
            headers={**bearer(key), "Origin": "https://app.example", "X-Request-Id": "r-7"},
        )
        other = client.get(
            "/v2/team/credit-usage", headers={**bearer(key), "Origin": "https://evil.example"}
        )
    assert allowed.status_code == other.status_code == 200
    assert allowed.headers["content-type"] == "application/json"
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["vary"] == "Origin"
    assert allowed.headers["x-request-id"] == "r-7"
    assert "access-control-allow-origin" not in other.headers
    assert len(other.headers["x-request-id"]) == 32
    lines = [r for r in caplog.records if r.name == "creditgate.requests"]
    assert [(r.fields["route"], r.fields["status"]) for r in lines] == [  # type: ignore[attr-defined]
        ("/v2/team/credit-usage", 200),
        ("/v2/team/credit-usage", 200),
    ]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "Unauthorized"),
        ({"Authorization": "Bearer fc-nope"}, 401, "Unauthorized: Invalid token"),
        (bearer("fc-" + "0" * 32), 401, "Unauthorized: Invalid token"),
    ],
)
def test_refusals_are_the_envelopes_of_before(
    client: TestClient, headers: dict[str, str], status: int, error: str
) -> None:
    response = client.get("/v1/team/credit-usage", headers=headers)
    assert response.status_code == status
    assert response.json() == {"success": False, "error": error}
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in response.headers


def test_other_spellings_and_methods_take_the_full_stack(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now)
    assert client.get("/v2/team/credit-usage/", headers=bearer(key)).status_code == 400
    assert client.get("/v2/team/credit-usage?x=%00", headers=bearer(key)).status_code == 400
    assert client.head("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    assert client.post("/v2/team/credit-usage", headers=bearer(key)).json() == {
        "success": False,
        "error": "Method Not Allowed",
    }
    preflight = client.options("/v2/team/credit-usage")
    assert preflight.status_code == 204


def _by_key(client: TestClient, key: str, path: str = "/v2/team/credit-usage/historical") -> Any:
    response = client.get(path, headers=bearer(key), params={"byApiKey": "true"})
    assert response.status_code == 200, response.text
    return [
        (r["startDate"][:10], r["apiKey"], *list(r.values())[3:])
        for r in response.json()["periods"]
    ]


def test_a_late_charge_into_a_closed_period_shows_in_the_next_historical_answer(
    client: TestClient, second: TestClient, db: Database, clock: Clock
) -> None:
    """Closed periods' rows are kept in memory: a charge recorded later into one of them, by
    another instance on the same database, is in the next answer all the same."""
    team, key, _ = team_with_key(db, clock.now, anchor="2026-06-01T00:00:00Z", key_name="beta")
    alpha = keys.create_key(db, team.id, clock.now, name="alpha").secret
    charge(db, key, 40, clock.now, at="2026-06-10T00:00:00Z")
    charge(db, key, 7, clock.now)
    first = _by_key(client, key)
    assert (
        first
        == _by_key(client, key)
        == [
            ("2026-06-01", "beta", 40, 40),
            ("2026-08-01", "beta", 7, 7),
        ]
    )
    for body in (
        {"key": key, "credits": 5, "at": "2026-06-11T00:00:00Z"},  # a closed period's row grows
        {"key": alpha, "credits": 3, "at": "2026-07-02T00:00:00Z"},  # a closed period's first
    ):
        answer = second.post("/admin/charges", headers=bearer(ADMIN_TOKEN), json=body)
        assert answer.status_code == 201, answer.text
    assert _by_key(client, key) == [
        ("2026-06-01", "beta", 45, 45),
        ("2026-07-01", "alpha", 3, 3),
        ("2026-08-01", "beta", 7, 7),
    ]
    # A late charge of 0 credits by a key without usage in that period: the period's total
    # is the same, its rows are not.
    zero = {"key": alpha, "credits": 0, "at": "2026-06-12T00:00:00Z"}
    assert second.post("/admin/charges", headers=bearer(ADMIN_TOKEN), json=zero).status_code == 201
    assert _by_key(client, alpha, "/v1/team/token-usage/historical") == [
        ("2026-06-01", "alpha", 0, 0),
        ("2026-06-01", "beta", 675, 675),
        ("2026-07-01", "alpha", 45, 45),
        ("2026-08-01", "beta", 105, 105),
    ]


def test_historical_by_key_follows_the_current_period_and_the_next(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _, key, _ = team_with_key(db, clock.now, key_name="main")
    charge(db, key, 2, clock.now)
    assert _by_key(client, key) == [("2026-08-01", "main", 2, 2)]
    charge(db, key, 3, clock.now)
    assert _by_key(client, key) == [("2026-08-01", "main", 5, 5)]
    clock.set("2026-09-02T00:00:00Z")
    assert _by_key(client, key) == [("2026-08-01", "main", 5, 5)]
    charge(db, key, 1, clock.now)
    assert _by_key(client, key) == [("2026-08-01", "main", 5, 5), ("2026-09-01", "main", 1, 1)]
