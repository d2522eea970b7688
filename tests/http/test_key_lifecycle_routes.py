"""Key lifecycle over HTTP (issue #11): expiresAt, PATCH /admin/keys/{id}, rotation, a key's
own requests per minute, lastUsedAt in the listings, and their OpenAPI entries."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer

ADMIN = bearer(ADMIN_TOKEN)
INVALID = {"success": False, "error": "Unauthorized: Invalid token"}


def post(client: TestClient, path: str, body: Any = None) -> Any:
    return client.post(path, headers=ADMIN, json=body)


def new_team(client: TestClient) -> str:
    team = post(client, "/admin/teams", {"name": "acme", "plan": "hobby"})
    assert team.status_code == 201, team.text
    return str(team.json()["data"]["id"])


def keys_of(client: TestClient, team_id: str) -> dict[str, Any]:
    listed = client.get(f"/admin/teams/{team_id}/keys", headers=ADMIN).json()["data"]
    return {k["name"]: k for k in listed}


def test_an_expired_key_is_refused_like_an_unknown_one_and_stays_listed(
    client: TestClient, clock: Clock
) -> None:
    clock.set("2026-08-01T00:00:00Z")
    team_id = new_team(client)
    created = post(
        client,
        f"/admin/teams/{team_id}/keys",
        {"name": "temp", "expiresAt": "2026-08-01T01:00:00Z"},
    )
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["expiresAt"] == "2026-08-01T01:00:00.000Z"
    key = data["key"]
    assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    clock.set("2026-08-01T00:59:59.999Z")
    assert client.get("/v1/team/credit-usage", headers=bearer(key)).status_code == 200
    clock.set("2026-08-01T01:00:00Z")
    for path in ("/v2/team/credit-usage", "/v1/team/queue-status", "/v2/concurrency-check"):
        refused = client.get(path, headers=bearer(key))
        assert (refused.status_code, refused.json()) == (401, INVALID), path
    unknown = client.get("/v2/team/credit-usage", headers=bearer("fc-" + "0" * 32))
    assert (unknown.status_code, unknown.json()) == (401, INVALID)
    listed = keys_of(client, team_id)["temp"]
    assert listed["expiresAt"] == "2026-08-01T01:00:00.000Z" and listed["revokedAt"] is None


def test_expires_at_must_be_a_future_instant_with_a_zone(client: TestClient) -> None:
    team_id = new_team(client)
    for stamp, text in (
        ("2020-01-01T00:00:00Z", "expiresAt must lie in the future"),
        ("2026-09-01T00:00:00", "expiresAt"),
        ("soon", "expiresAt"),
    ):
        answer = post(client, f"/admin/teams/{team_id}/keys", {"expiresAt": stamp})
        assert answer.status_code == 400, stamp
        assert text in answer.json()["error"]


def test_patch_sets_and_clears_metadata_rpm_and_expiry(client: TestClient) -> None:
    team_id = new_team(client)
    created = post(
        client, f"/admin/teams/{team_id}/keys", {"name": "ci", "metadata": {"owner": "ci"}}
    ).json()["data"]
    assert created["metadata"] == {"owner": "ci"} and created["rpm"] is None
    key_id = created["id"]
    patched = client.patch(
        f"/admin/keys/{key_id}",
        headers=ADMIN,
        json={"metadata": {"owner": "ops", "n": 2}, "rpm": 5, "expiresAt": "2027-01-01T00:00:00Z"},
    )
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert (data["metadata"], data["rpm"], data["expiresAt"]) == (
        {"owner": "ops", "n": 2},
        5,
        "2027-01-01T00:00:00.000Z",
    )
    cleared = client.patch(
        f"/admin/keys/{key_id}", headers=ADMIN, json={"metadata": None, "rpm": None}
    ).json()["data"]
    assert (cleared["metadata"], cleared["rpm"], cleared["expiresAt"]) == (
        None,
        None,
        "2027-01-01T00:00:00.000Z",
    )
    assert keys_of(client, team_id)["ci"]["metadata"] is None
    empty = client.patch(f"/admin/keys/{key_id}", headers=ADMIN, json={})
    assert empty.status_code == 400 and "nothing to update" in empty.json()["error"]
    unknown = client.patch(f"/admin/keys/{key_id}", headers=ADMIN, json={"name": "x"})
    assert unknown.status_code == 400
    missing = client.patch("/admin/keys/nope", headers=ADMIN, json={"rpm": 3})
    assert missing.status_code == 404


def test_rotation_over_http_overlaps_then_only_the_new_key_works(
    client: TestClient, clock: Clock
) -> None:
    clock.set("2026-08-01T00:00:00Z")
    team_id = new_team(client)
    old = post(
        client, f"/admin/teams/{team_id}/keys", {"name": "backend", "cap": 500, "rpm": 50}
    ).json()["data"]
    rotated = post(client, f"/admin/keys/{old['id']}/rotate", {"overlapSeconds": 60})
    assert rotated.status_code == 201, rotated.text
    data = rotated.json()["data"]
    assert (data["name"], data["cap"], data["rpm"], data["rotatedFrom"]) == (
        "backend",
        500,
        50,
        old["id"],
    )
    assert data["key"].startswith("fc-") and data["key"] != old["key"]
    assert data["replaced"]["expiresAt"] == "2026-08-01T00:01:00.000Z"
    assert data["replaced"]["name"] == f"backend (rotated {old['id'][-8:]})"
    for key in (old["key"], data["key"]):
        assert client.get("/v2/team/credit-usage", headers=bearer(key)).status_code == 200
    clock.set("2026-08-01T00:01:00Z")
    refused = client.get("/v2/team/credit-usage", headers=bearer(old["key"]))
    assert (refused.status_code, refused.json()) == (401, INVALID)
    assert client.get("/v2/team/credit-usage", headers=bearer(data["key"])).status_code == 200
    again = post(client, f"/admin/keys/{old['id']}/rotate")  # no body: no overlap
    assert again.status_code == 409
    no_body = client.post(f"/admin/keys/{data['id']}/rotate", headers=ADMIN)
    assert no_body.status_code == 201, no_body.text
    assert no_body.json()["data"]["replaced"]["expiresAt"] == "2026-08-01T00:01:00.000Z"


def test_a_keys_own_rpm_limits_it_with_the_firecrawl_text_and_not_its_team(
    client: TestClient, clock: Clock
) -> None:
    clock.set("2026-08-01T00:00:20Z")
    team_id = new_team(client)
    slow = post(client, f"/admin/teams/{team_id}/keys", {"name": "slow", "rpm": 2}).json()
    fast = post(client, f"/admin/teams/{team_id}/keys", {"name": "fast"}).json()
    slow_key, fast_key = slow["data"]["key"], fast["data"]["key"]
    for _ in range(2):
        assert client.get("/v2/team/credit-usage", headers=bearer(slow_key)).status_code == 200
    limited = client.get("/v2/team/credit-usage", headers=bearer(slow_key))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "40"
    assert limited.json() == {
        "success": False,
        "error": (
            "Rate limit exceeded. Consumed (req/min): 2, Remaining (req/min): 0. Upgrade your plan "
            "at https://firecrawl.dev/pricing for increased rate limits or please retry after 40s, "
            "resets at Sat Aug 01 2026 00:01:00 GMT+0000 (Coordinated Universal Time)"
        ),
    }
    assert client.get("/v2/team/credit-usage", headers=bearer(fast_key)).status_code == 200
    clock.set("2026-08-01T00:01:00Z")
    assert client.get("/v2/team/credit-usage", headers=bearer(slow_key)).status_code == 200


def test_last_used_at_is_written_in_rounds_and_listed(
    ctx: AppContext, db: Database, clock: Clock
) -> None:
    ctx.key_use_seconds = 0  # no background round: the test flushes
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        clock.set("2026-08-01T00:00:00Z")
        team_id = new_team(client)
        key = post(client, f"/admin/teams/{team_id}/keys", {"name": "ci"}).json()["data"]
        assert key["lastUsedAt"] is None
        for second in range(5):
            clock.set(f"2026-08-01T00:00:0{second}Z")
            answer = client.get("/v2/team/credit-usage", headers=bearer(key["key"]))
            assert answer.status_code == 200
        assert keys_of(client, team_id)["ci"]["lastUsedAt"] is None  # not one write per request
        assert ctx.key_uses.flush(db) == 1
        assert keys_of(client, team_id)["ci"]["lastUsedAt"] == "2026-08-01T00:00:04.000Z"
        clock.set("2026-08-01T00:00:09Z")
        client.get("/v1/team/credit-usage", headers=bearer(key["key"]))
    # the app's shutdown wrote the last round
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        assert keys_of(client, team_id)["ci"]["lastUsedAt"] == "2026-08-01T00:00:09.000Z"


@pytest.mark.parametrize(
    ("method", "path", "schema"),
    [
        ("patch", "/admin/keys/{key_id}", "KeyPatch"),
        ("post", "/admin/keys/{key_id}/rotate", "KeyRotateIn"),
        ("post", "/admin/teams/{team_id}/keys", "KeyIn"),
    ],
)
def test_openapi_describes_the_key_lifecycle_routes(
    client: TestClient, method: str, path: str, schema: str
) -> None:
    spec = client.get("/openapi.json", headers=ADMIN).json()
    assert method in spec["paths"][path], path
    body = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{schema}"}
    key_in = spec["components"]["schemas"]["KeyIn"]["properties"]
    assert {"expiresAt", "rpm", "metadata"} <= set(key_in)
