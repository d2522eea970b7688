"""Team names are unique on the admin API too: a taken name is a 409 in the Firecrawl envelope,
and GET /admin/teams/{team} takes the team's id or its name."""

from __future__ import annotations

from starlette.testclient import TestClient

TAKEN = {
    "success": False,
    "error": "A team named acme exists already: team names are unique, choose another",
    "field": "name",
}


def test_a_taken_name_is_a_409_and_changes_nothing(admin: TestClient) -> None:
    made = admin.post("/admin/teams", json={"name": "acme"})
    assert made.status_code == 201
    again = admin.post("/admin/teams", json={"name": "acme", "plan": "hobby"})
    assert (again.status_code, again.json()) == (409, TAKEN)
    beta = admin.post("/admin/teams", json={"name": "beta"}).json()["data"]
    renamed = admin.patch(f"/admin/teams/{beta['id']}", json={"name": "acme"})
    assert (renamed.status_code, renamed.json()) == (409, TAKEN)
    listed = admin.get("/admin/teams").json()["data"]
    assert sorted(t["name"] for t in listed) == ["acme", "beta"]


def test_a_team_is_found_by_its_id_or_its_name(admin: TestClient) -> None:
    made = admin.post("/admin/teams", json={"name": "acme"}).json()["data"]
    admin.post("/admin/teams", json={"name": "acme corp/eu"})
    by_name = admin.get("/admin/teams/acme").json()
    assert (
        by_name
        == admin.get(f"/admin/teams/{made['id']}").json()
        == {
            "success": True,
            "data": made,
        }
    )
    assert admin.get("/admin/teams/acme/balance").json()["data"]["remainingCredits"] == 500
    missing = admin.get("/admin/teams/nobody")
    assert (missing.status_code, missing.json()["error"]) == (404, "Team nobody not found")
    # any name, in the query: one team or none
    listed = admin.get("/admin/teams", params={"name": "acme corp/eu"}).json()
    assert [t["name"] for t in listed["data"]] == ["acme corp/eu"]
    assert (listed["cursor"], listed["hasMore"]) == (None, False)
    assert admin.get("/admin/teams", params={"name": "acme cor"}).json()["data"] == []


def test_the_openapi_document_declares_the_name_query_and_the_409s() -> None:
    from creditgate.http.openapi import build

    teams = build()["paths"]["/admin/teams"]
    (name,) = [p for p in teams["get"]["parameters"] if p["name"] == "name"]
    assert (name["in"], name["schema"]) == ("query", {"type": "string"})
    assert "409" in teams["post"]["responses"]
    assert "409" in build()["paths"]["/admin/teams/{team_id}"]["patch"]["responses"]
    assert "409" not in teams["get"]["responses"]
