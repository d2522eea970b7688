"""Operators get what they typed: the CLI does what its words say and prints what the API does."""

from __future__ import annotations

from starlette.testclient import TestClient

from creditgate.storage.database import Database
from tests.cli.test_cli import envelope
from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer

ADMIN = bearer(ADMIN_TOKEN)


def test_one_json_shape_for_objects_and_lists_in_the_cli_and_the_admin_api(
    database_url: str, db: Database, client: TestClient
) -> None:
    created = envelope(database_url, "team", "create", "acme", "--plan", "hobby")
    team = created["data"]
    assert created == {"success": True, "data": team}
    assert (team["name"], team["plan"]) == ("acme", "hobby")
    assert client.get(f"/admin/teams/{team['id']}", headers=ADMIN).json() == created
    assert envelope(database_url, "team", "list") == {
        "success": True,
        "data": [team],
        "cursor": None,
        "hasMore": False,
    }
    key = envelope(database_url, "key", "create", team["id"], "--name", "ci")["data"]
    listed = envelope(database_url, "key", "list", team["id"])
    assert listed == {
        "success": True,
        "data": [{k: v for k, v in key.items() if k != "key"}],
        "cursor": None,
        "hasMore": False,
    }
    revoked = envelope(database_url, "key", "revoke", key["id"])
    assert set(revoked) == {"success", "data"} and revoked["data"]["revokedAt"] is not None
    usage = envelope(database_url, "usage", team["id"])
    assert usage == {
        "success": True,
        "data": {
            "teamId": team["id"],
            "remainingCredits": 3000,
            "planCredits": 3000,
            "periods": [],
        },
    }
    admin_usage = client.get(f"/admin/teams/{team['id']}/usage", headers=ADMIN).json()
    assert admin_usage == {"success": True, "data": []}
    assert envelope(database_url, "migrate")["data"]["database"]
