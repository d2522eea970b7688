"""A team's anchor may lie at most a year back: creating a team never writes decades of grants."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner
from sqlalchemy import text
from starlette.testclient import TestClient

from creditgate.cli import main
from creditgate.domain.instants import MS_PER_DAY, format_iso
from creditgate.services import teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer

ADMIN = bearer(ADMIN_TOKEN)
TOO_OLD = {
    "success": False,
    "error": "anchor must not be more than a year in the past",
    "field": "anchor",
}


def test_an_anchor_more_than_a_year_back_is_refused_by_the_api_and_the_cli(
    client: TestClient, db: Database, clock: Clock, database_url: str
) -> None:
    started = time.monotonic()
    for anchor in ("0001-01-01T00:00:00Z", format_iso(clock.now - 366 * MS_PER_DAY - 1)):
        response = client.post(
            "/admin/teams", headers=ADMIN, json={"name": "a", "plan": "hobby", "anchor": anchor}
        )
        assert (response.status_code, response.json()) == (400, TOO_OLD), anchor
    args = ["team", "create", "old", "--plan", "hobby", "--anchor", "0001-01-01T00:00:00Z"]
    cli = CliRunner().invoke(main, [*args, "--json", "--database-url", database_url])
    assert cli.exit_code == 1, cli.output
    assert json.loads(cli.stdout) == {**TOO_OLD, "status": 400}
    assert time.monotonic() - started < 5  # refused at once, not after writing 24,311 grants
    assert teams.list_teams(db) == []

    # A year back is the limit: its 13 periods are granted, the 12 already over expired.
    oldest = format_iso(clock.now - 366 * MS_PER_DAY)
    made = client.post(
        "/admin/teams", headers=ADMIN, json={"name": "a", "plan": "hobby", "anchor": oldest}
    )
    assert made.status_code == 201, made.text
    assert made.json()["data"]["anchor"] == "2025-07-31T00:00:00.000Z"
    team_id = made.json()["data"]["id"]
    balance = client.get(f"/admin/teams/{team_id}/balance", headers=ADMIN).json()["data"]
    assert balance == {
        "remainingCredits": 3000,
        "planCredits": 3000,
        "billingPeriodStart": "2026-07-31T00:00:00.000Z",
        "billingPeriodEnd": "2026-08-31T00:00:00.000Z",
    }
    with db.read() as conn:
        grants = conn.execute(
            text("SELECT count(*) FROM grants WHERE team_id = :t"), {"t": team_id}
        ).scalar()
    assert grants == 13
