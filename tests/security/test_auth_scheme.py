"""The Authorization header's scheme is Bearer, for team keys and the admin token alike."""

from __future__ import annotations

from starlette.testclient import TestClient

from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import team_with_key


def test_only_the_bearer_scheme_in_any_case_carries_a_team_key_or_the_admin_token(
    client: TestClient, db: Database, clock: Clock
) -> None:
    _team, key, _key_id = team_with_key(db, clock.now)
    for path, secret in (("/v2/team/credit-usage", key), ("/admin/teams", ADMIN_TOKEN)):
        for header in (f"Basic {secret}", f"Token {secret}", secret, f"{secret} Bearer"):
            response = client.get(path, headers={"Authorization": header})
            assert (response.status_code, response.json()) == (
                401,
                {"success": False, "error": "Unauthorized: Invalid token"},
            ), (path, header)
        for header, status, error in (
            ("Bearer", 401, "Unauthorized: Token missing"),
            ("bearer ", 401, "Unauthorized: Token missing"),
        ):
            response = client.get(path, headers={"Authorization": header})
            assert (response.status_code, response.json()) == (
                status,
                {"success": False, "error": error},
            ), (path, header)
        assert client.get(path).json() == {"success": False, "error": "Unauthorized"}
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            response = client.get(path, headers={"Authorization": f"{scheme} {secret}"})
            assert (response.status_code, response.json()["success"]) == (200, True), scheme
