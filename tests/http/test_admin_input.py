"""The admin API does what the operator asked, and refuses what it cannot understand."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from creditgate.domain.errors import InvalidInput
from creditgate.services import teams
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer

ADMIN = bearer(ADMIN_TOKEN)
HOBBY = {
    "id": "hobby",
    "credits": 3000,
    "interval": "month",
    "concurrency": 5,
    "scrapeRpm": 100,
    "crawlRpm": 20,
}


def hobby(client: TestClient) -> object:
    plans = client.get("/admin/plans", headers=ADMIN).json()["data"]
    return next(p for p in plans if p["id"] == "hobby")


def test_plan_patch_changes_only_the_given_fields_and_put_needs_every_field(
    client: TestClient, db: Database
) -> None:
    patched = client.patch("/admin/plans/hobby", headers=ADMIN, json={"credits": 3500})
    assert (patched.status_code, patched.json()) == (
        200,
        {"success": True, "data": {**HOBBY, "credits": 3500}},
    )
    partial = client.put("/admin/plans/hobby", headers=ADMIN, json={"credits": 4000})
    assert (partial.status_code, partial.json()["error"]) == (
        400,
        "Bad Request: interval: Field required",
    )
    assert hobby(client) == {**HOBBY, "credits": 3500}  # a refused PUT reset nothing
    whole = {**HOBBY, "credits": 4000, "concurrency": 6}
    put = client.put("/admin/plans/hobby", headers=ADMIN, json={**whole, "id": "hobby"})
    assert (put.status_code, put.json()) == (200, {"success": True, "data": whole})
    elsewhere = client.put("/admin/plans/hobby", headers=ADMIN, json={**whole, "id": "scale"})
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (
        400,
        "Bad Request: id: must be the plan in the path, hobby",
    )
    for body, error in (
        (
            {},
            "Bad Request: nothing to update: give at least one of credits, interval, "
            "concurrency, scrapeRpm, crawlRpm",
        ),
        ({"credits": None}, "Bad Request: credits: must not be null"),
        ({"interval": "weekly"}, "interval must be one of: month, year, once"),
        ({"id": "x"}, "Bad Request: id: Extra inputs are not permitted"),
    ):
        refused = client.patch("/admin/plans/hobby", headers=ADMIN, json=body)
        assert (refused.status_code, refused.json()["error"]) == (400, error), body
    assert client.patch("/admin/plans/nope", headers=ADMIN, json={"credits": 1}).status_code == 404
    assert hobby(client) == whole

    made = client.post("/admin/plans", headers=ADMIN, json={"id": "pro", "credits": 20000})
    assert (made.status_code, made.json()["data"]) == (
        201,
        {
            "id": "pro",
            "credits": 20000,
            "interval": "month",
            "concurrency": 2,
            "scrapeRpm": 10,
            "crawlRpm": 2,
        },
    )


def test_a_team_patch_that_names_nothing_is_refused(
    client: TestClient, db: Database, clock: Clock
) -> None:
    team = client.post("/admin/teams", headers=ADMIN, json={"name": "acme", "plan": "hobby"})
    team_id = team.json()["data"]["id"]
    nothing = "Bad Request: nothing to update: give at least one of name, plan, suspended, "
    for body, refusal in (
        ({}, {"error": nothing + "allowOverage"}),
        ({"plan": None}, {"error": "Bad Request: plan: must not be null", "field": "plan"}),
        (
            {"suspended": None, "name": "x"},
            {"error": "Bad Request: suspended: must not be null", "field": "suspended"},
        ),
    ):
        refused = client.patch(f"/admin/teams/{team_id}", headers=ADMIN, json=body)
        assert (refused.status_code, refused.json()) == (400, {"success": False, **refusal}), body
    assert client.get(f"/admin/teams/{team_id}", headers=ADMIN).json() == team.json()
    with pytest.raises(InvalidInput, match=r"^nothing to update: no field of the team was given$"):
        teams.update_team(db, team_id, clock.now)
    same = client.patch(f"/admin/teams/{team_id}", headers=ADMIN, json={"plan": "hobby"})
    assert (same.status_code, same.json()) == (200, team.json())
