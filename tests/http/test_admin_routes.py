"""The admin API: operators create teams, keys, plans and grants; services record charges."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, team_with_key

ADMIN = bearer(ADMIN_TOKEN)


def post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, headers=ADMIN, json=body)


def setup_team(client: TestClient, plan: str = "hobby") -> tuple[str, str, str]:
    team = post(client, "/admin/teams", {"name": "acme", "plan": plan})
    assert team.status_code == 201, team.text
    team_id = team.json()["data"]["id"]
    key = post(client, f"/admin/teams/{team_id}/keys", {"name": "ci"}).json()["data"]
    return team_id, key["key"], key["id"]


def balance(client: TestClient, team_id: str) -> int:
    data = client.get(f"/admin/teams/{team_id}/balance", headers=ADMIN).json()["data"]
    return int(data["remainingCredits"])


def test_operator_flow_team_key_grant_charge_usage(client: TestClient, db: Database) -> None:
    team_id, key, key_id = setup_team(client)
    assert key.startswith("fc-") and len(key) == 35
    grant = post(
        client,
        f"/admin/teams/{team_id}/grants",
        {"credits": 500, "kind": "topup", "note": "invoice 12"},
    )
    assert grant.status_code == 201
    assert grant.json()["data"]["remainingCredits"] == 3500
    charged = post(
        client,
        "/admin/charges",
        {"key": key, "credits": 25, "endpoint": "scrape", "target": "https://example.com"},
    )
    assert charged.status_code == 201
    assert charged.json()["data"]["remainingCredits"] == 3475
    by_id = post(client, "/admin/charges", {"keyId": key_id, "credits": 5})
    assert by_id.json()["data"]["keyId"] == key_id
    usage = client.get(f"/admin/teams/{team_id}/usage?byKey=true", headers=ADMIN).json()
    assert [(p["apiKey"], p["creditsUsed"]) for p in usage["data"]] == [("ci", 30)]
    assert (
        client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]["remainingCredits"]
        == 3470
    )
    keys = client.get(f"/admin/teams/{team_id}/keys", headers=ADMIN).json()["data"]
    assert [k["name"] for k in keys] == ["ci"] and "key" not in keys[0]
    assert keys[0]["hint"] == "fc-..." + key[-4:]


def test_charge_idempotency_on_the_wire(client: TestClient, db: Database) -> None:
    team_id, key, _ = setup_team(client)
    body = {"key": key, "credits": 9, "idempotencyKey": "evt-77"}
    first = post(client, "/admin/charges", body)
    again = post(client, "/admin/charges", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]
    conflict = post(client, "/admin/charges", {**body, "credits": 10})
    assert conflict.status_code == 409
    assert (
        conflict.json()["error"]
        == "Idempotency key 'evt-77' was already used with different content."
    )
    assert balance(client, team_id) == 2991


def test_batch_reports_each_event(client: TestClient, db: Database) -> None:
    team_id, key, _ = setup_team(client)
    events = [
        {"key": key, "credits": 10, "idempotencyKey": "a"},
        {"key": key, "credits": 10, "idempotencyKey": "a"},
        {"key": key, "credits": 99999, "idempotencyKey": "b"},
        {"key": key, "credits": -1},
        {"key": "fc-" + "f" * 32, "credits": 1},
        {"key": key, "credits": 5, "at": "2026-08-01T00:00:00Z", "idempotencyKey": "c"},
    ]
    body = client.post("/admin/charges/batch", headers=ADMIN, json={"events": events}).json()
    assert [(r["index"], r["status"], r.get("code")) for r in body["data"]] == [
        (0, "accepted", None),
        (1, "duplicate", None),
        (2, "rejected", 402),
        (3, "rejected", 400),
        (4, "rejected", 404),
        (5, "accepted", None),
    ]
    assert body["data"][2]["remainingCredits"] == 2990  # when event 2 was decided
    assert balance(client, team_id) == 2985


def test_batch_size_is_limited(ctx: AppContext, client: TestClient, db: Database) -> None:
    ctx.max_batch_events = 3
    _, key, _ = setup_team(client)
    response = client.post(
        "/admin/charges/batch", headers=ADMIN, json={"events": [{"key": key, "credits": 1}] * 4}
    )
    assert response.status_code == 413
    assert response.json() == {"success": False, "error": "Too many events: at most 3 per request."}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("{not json", 400, "Invalid JSON body"),
        ({"credits": "5"}, 400, "credits"),
        ({"credits": 1.5}, 400, "credits"),
        ({"credits": -3}, 400, "credits"),
        ({"credits": 10**15}, 400, "credits"),
        ({"credits": True}, 400, "credits"),
        ({"credits": 1, "bogus": 1}, 400, "bogus"),
        ({"credits": 1}, 400, "exactly one of key or keyId"),
        ({"credits": 1, "at": "2026-08-01T00:00:00"}, 400, "time zone"),
        ({"credits": 1, "at": "2026-08-01T00:06:00Z"}, 400, "future"),
        ({"credits": 1, "keyId": "nope"}, 404, "not found"),
    ],
)
def test_bad_charges_get_a_clear_error_and_change_nothing(
    client: TestClient, db: Database, body: Any, status: int, fragment: str
) -> None:
    team_id, key, _ = setup_team(client)
    if isinstance(body, dict) and "keyId" not in body and fragment != "exactly one of key or keyId":
        body = {"key": key, **body}
    if isinstance(body, str):
        response = client.post(
            "/admin/charges", headers={**ADMIN, "content-type": "application/json"}, content=body
        )
    else:
        response = post(client, "/admin/charges", body)
    assert response.status_code == status
    assert response.json()["success"] is False
    assert fragment in response.json()["error"]
    assert balance(client, team_id) == 3000


def test_oversized_bodies_get_413(ctx: AppContext, client: TestClient, db: Database) -> None:
    ctx.max_body_bytes = 100
    response = post(client, "/admin/teams", {"name": "x" * 200})
    assert response.status_code == 413
    assert response.json()["error"] == "Request body is too large (limit 100 bytes)."


def test_admin_api_needs_the_admin_token_and_team_keys_are_not_admin(
    ctx: AppContext, client: TestClient, db: Database
) -> None:
    _, key, _ = setup_team(client)
    assert client.get("/admin/teams").json() == {"success": False, "error": "Unauthorized"}
    for token in (key, "wrong"):
        response = client.get("/admin/teams", headers=bearer(token))
        assert (response.status_code, response.json()["error"]) == (
            401,
            "Unauthorized: Invalid token",
        )
    ctx.admin_token = None
    assert client.get("/admin/teams", headers=ADMIN).status_code == 403


def test_team_lifecycle_suspend_resume_and_plans(client: TestClient, db: Database) -> None:
    team_id, key, key_id = setup_team(client)
    suspended = client.patch(f"/admin/teams/{team_id}", headers=ADMIN, json={"suspended": True})
    assert suspended.json()["data"]["suspended"] is True
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 403
    client.patch(f"/admin/teams/{team_id}", headers=ADMIN, json={"suspended": False})
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    revoked = client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert revoked.json()["data"]["revokedAt"] is not None
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 401
    plans = client.get("/admin/plans", headers=ADMIN).json()["data"]
    assert [(p["id"], p["credits"]) for p in plans] == [
        ("free", 500),
        ("hobby", 3000),
        ("standard", 100000),
        ("growth", 500000),
        ("scale", 1000000),
    ]
    made = post(client, "/admin/plans", {"id": "team-50k", "credits": 50000, "concurrency": 20})
    assert made.status_code == 201
    changed = client.patch(
        "/admin/plans/team-50k", headers=ADMIN, json={"credits": 60000, "interval": "year"}
    )
    assert changed.json()["data"]["credits"] == 60000
    assert post(client, "/admin/plans", {"id": "team-50k", "credits": 1}).status_code == 409
    bad = post(client, "/admin/plans", {"id": "x", "credits": 1, "interval": "weekly"})
    assert bad.status_code == 400
    assert post(client, "/admin/teams", {"name": "n", "plan": "nope"}).status_code == 404
    assert client.get("/admin/teams/nope", headers=ADMIN).status_code == 404


def test_duplicate_key_names_are_refused(client: TestClient, db: Database) -> None:
    team_id, _, _ = setup_team(client)
    again = post(client, f"/admin/teams/{team_id}/keys", {"name": "ci"})
    assert (again.status_code, again.json()["error"]) == (
        409,
        "A key named 'ci' already exists in this team",
    )
    default = post(client, f"/admin/teams/{team_id}/keys", {}).json()["data"]
    assert default["name"] == "key-2"


def test_openapi_and_docs_describe_every_route(client: TestClient, clock: Clock) -> None:
    spec = client.get("/openapi.json", headers=ADMIN).json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v1/team/credit-usage",
        "/v2/team/credit-usage/historical",
        "/v2/team/activity",
        "/admin/charges",
        "/admin/teams/{team_id}/grants",
    ):
        assert path in spec["paths"], path
    charge_schema = spec["components"]["schemas"]["ChargeIn"]
    assert charge_schema["properties"]["credits"]["minimum"] == 0
    page = client.get("/docs", headers=ADMIN)
    assert page.status_code == 200 and "/admin/charges/batch" in page.text


def test_without_the_admin_token_the_documents_describe_the_account_api_only(
    client: TestClient,
) -> None:
    """Found by an outside tester (issue 19): /openapi.json and /docs described the admin API to
    anyone. Without the admin token they describe the account API alone (what any SDK user may
    read), and no schema only the admin API uses."""
    whole = client.get("/openapi.json", headers=ADMIN).json()
    for headers in ({}, bearer("fc-" + "0" * 32), bearer(ADMIN_TOKEN + "x")):
        spec = client.get("/openapi.json", headers=headers).json()
        assert spec["paths"] and all(not p.startswith("/admin") for p in spec["paths"])
        assert set(spec["paths"]) == {p for p in whole["paths"] if not p.startswith("/admin")}
        assert "ChargeIn" not in spec["components"]["schemas"]
        assert set(spec["components"]["schemas"]) < set(whole["components"]["schemas"])
        page = client.get("/docs", headers=headers)
        assert page.status_code == 200 and "/v2/team/credit-usage" in page.text
        assert "/admin" not in page.text and "ChargeIn" not in page.text


def test_a_plan_upgrade_now_over_the_api(client: TestClient, db: Database, clock: Clock) -> None:
    team, _, _ = team_with_key(db, clock.now, plan="hobby")
    headers = bearer(ADMIN_TOKEN)
    changed = client.patch(
        f"/admin/teams/{team.id}", headers=headers, json={"plan": "standard", "now": True}
    )
    assert changed.status_code == 200 and changed.json()["data"]["plan"] == "standard"
    balance = client.get(f"/admin/teams/{team.id}/balance", headers=headers).json()["data"]
    assert (balance["remainingCredits"], balance["planCredits"]) == (100_000, 100_000)
    alone = client.patch(f"/admin/teams/{team.id}", headers=headers, json={"now": True})
    assert alone.status_code == 400
    assert client.get(f"/admin/teams/{team.id}/balance", headers=headers).json() == {
        "success": True,
        "data": balance,
    }
