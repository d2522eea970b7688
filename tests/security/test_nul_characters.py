"""A NUL character in any input is bad input (400), on PostgreSQL exactly as on SQLite."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from creditgate.cli import main
from creditgate.domain.errors import InvalidInput
from creditgate.services import ledger, teams
from creditgate.storage.database import Database
from creditgate.web.edge import NON_CANONICAL
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer, team_with_key

ADMIN = bearer(ADMIN_TOKEN)
IN_URL = {"success": False, "error": "Bad Request: the URL must not contain NUL characters."}
IN_PATH = {"success": False, "error": NON_CANONICAL}


def in_body(field: str) -> dict[str, Any]:
    return {
        "success": False,
        "error": f"Bad Request: {field}: must not contain NUL characters",
        "field": field,
    }


def test_a_nul_character_anywhere_in_input_is_a_400_on_every_database(
    client: TestClient, db: Database, clock: Clock, database_url: str
) -> None:
    team, key, _key_id = team_with_key(db, clock.now)
    for method, path, body, expected in (
        ("POST", "/admin/teams", {"name": "a\x00b"}, in_body("name")),
        ("PATCH", f"/admin/teams/{team.id}", {"name": "a\x00"}, in_body("name")),
        ("POST", f"/admin/teams/{team.id}/keys", {"name": "\x00"}, in_body("name")),
        (
            "POST",
            "/admin/charges",
            {"key": key, "credits": 1, "idempotencyKey": "evt\x00"},
            in_body("idempotencyKey"),
        ),
        (
            "POST",
            "/admin/charges/batch",
            {"events": [{"key": key, "credits": 1, "target": "https://x/\x00"}]},
            in_body("events.0.target"),
        ),
        ("POST", "/admin/check", {"key\x00": key, "credits": 1}, in_body("key\x00")),
        ("GET", "/admin/teams/a%00b", None, IN_PATH),  # no spelling but the canonical one
        ("GET", "/admin/reservations/%00", None, IN_PATH),
        ("GET", "/admin/teams?x=%00", None, IN_URL),
    ):
        response = client.request(method, path, headers=ADMIN, json=body)
        assert (response.status_code, response.json()) == (400, expected), (method, path)
    for query in ("cursor=%00", "cursor=abc%00def", "endpoint=scr%00ape", "limit=1%00"):
        response = client.get(f"/v2/team/activity?{query}", headers=bearer(key))
        assert (response.status_code, response.json()) == (400, IN_URL), query

    # The services refuse it too, whoever calls them (the CLI, the gateway's targets).
    with pytest.raises(InvalidInput, match=r"^name must not contain NUL characters$"):
        teams.create_team(db, "acme\x00", clock.now)
    with pytest.raises(InvalidInput, match=r"^target must not contain NUL characters$"):
        ledger.charge(db, ledger.ChargeRequest(key=key, credits=1, target="\x00"), clock.now)
    for args, field in (
        (["team", "create", "a\x00b"], "name"),
        (["key", "list", f"{team.id}\x00"], "team_id"),
        (["charge", key, "1", "--id", "\x00"], "idempotency_key"),
    ):
        result = CliRunner().invoke(main, [*args, "--json", "--database-url", database_url])
        assert result.exit_code == 1, result.output
        assert json.loads(result.stdout) == {
            "success": False,
            "error": f"{field} must not contain NUL characters",
            "status": 400,
            "field": field,
        }

    assert [t.name for t in teams.list_teams(db)] == ["acme"]
    listed = client.get(f"/admin/teams/{team.id}/keys", headers=ADMIN).json()["data"]
    assert [k["name"] for k in listed] == ["default"]
    usage = client.get("/v2/team/credit-usage", headers=bearer(key)).json()["data"]
    assert usage["remainingCredits"] == 3000


def test_a_nul_hidden_in_an_activity_cursor_is_an_invalid_cursor(
    client: TestClient, db: Database, clock: Clock
) -> None:
    """Found by an outside tester: base64 hid a NUL from the edge, and PostgreSQL answered 500."""
    import base64

    _, key, _ = team_with_key(db, clock.now)
    for movement_id in ("a" * 35 + "\x00", "0" * 36, "x"):
        raw = f"2026-08-01T00:00:00.000Z:{movement_id}".encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = client.get(f"/v2/team/activity?cursor={cursor}", headers=bearer(key))
        assert (response.status_code, response.json()) == (
            400,
            {"success": False, "error": "Invalid cursor."},
        ), movement_id
