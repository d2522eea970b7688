"""The admin API does what the operator asked, and refuses what it cannot understand."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from creditgate.domain.errors import InvalidInput
from creditgate.http.admin import ADMIN_ROUTES, QUERY
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
    nothing = "Bad Request: nothing to update: give at least one of name, plan, now, suspended, "
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


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _, _ in ADMIN_ROUTES])
def test_every_admin_route_refuses_a_query_parameter_it_does_not_take(
    client: TestClient, db: Database, method: str, path: str
) -> None:
    url = re.sub(r"{\w+}", "nope", path) + "?timeRange=day"
    takes = QUERY.get((method, path), ())
    allowed = f"allowed: {', '.join(takes)}" if takes else "this route takes none"
    refused = client.request(method, url, headers=ADMIN, json={})
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "success": False,
            "error": f"Bad Request: timeRange: unknown query parameter ({allowed})",
            "field": "timeRange",
        },
    )
    assert client.request(method, url, json={}).status_code == 401  # the token comes first


def test_admin_query_parameters_are_validated(client: TestClient, db: Database) -> None:
    team = client.post("/admin/teams", headers=ADMIN, json={"name": "acme"}).json()["data"]
    usage = f"/admin/teams/{team['id']}/usage"
    limit = "Bad Request: limit: must be an integer from 1 to 1000"
    for url, error, field in (
        (f"{usage}?byKey=1", "Bad Request: byKey: must be true or false", "byKey"),
        (f"{usage}?byKey=", "Bad Request: byKey: must be true or false", "byKey"),
        (f"{usage}?byKey=TRUE", "Bad Request: byKey: must be true or false", "byKey"),
        (f"{usage}?byKey=true&byKey=false", "Bad Request: byKey: given more than once", "byKey"),
        ("/admin/teams?limit=abc", limit, "limit"),
        ("/admin/teams?limit=0", limit, "limit"),
        ("/admin/teams?limit=1001", limit, "limit"),
        ("/admin/teams?limit=-1", limit, "limit"),
        ("/admin/teams?limit=%205", limit, "limit"),
        ("/admin/plans?limit=1e3", limit, "limit"),
        ("/admin/teams?cursor=junk", "Invalid cursor.", "cursor"),
        ("/admin/teams?cursor=", "Invalid cursor.", "cursor"),
        (f"/admin/teams/{team['id']}/keys?cursor=W10", "Invalid cursor.", "cursor"),
    ):
        refused = client.get(url, headers=ADMIN)
        assert (refused.status_code, refused.json()) == (
            400,
            {"success": False, "error": error, "field": field},
        ), url
    for url in (f"{usage}?byKey=true", f"{usage}?byKey=false", "/admin/teams?limit=1000"):
        assert client.get(url, headers=ADMIN).status_code == 200, url
    plans = client.get("/admin/plans?limit=1", headers=ADMIN).json()
    other = client.get(f"/admin/teams?cursor={plans['cursor']}", headers=ADMIN)  # not its own
    assert (other.status_code, other.json()["error"]) == (400, "Invalid cursor.")


def walk(client: TestClient, path: str, limit: int) -> list[list[str]]:
    """The ids of each page of a listing, following its cursor to the end."""
    pages: list[list[str]] = []
    url = f"{path}?limit={limit}"
    while True:
        body = client.get(url, headers=ADMIN).json()
        assert set(body) == {"success", "data", "cursor", "hasMore"}, body
        assert body["hasMore"] is (body["cursor"] is not None)
        pages.append([row["id"] for row in body["data"]])
        if not body["hasMore"]:
            return pages
        url = f"{path}?limit={limit}&cursor={body['cursor']}"


def test_admin_lists_page_with_a_cursor_in_a_stable_order(
    client: TestClient, db: Database, clock: Clock
) -> None:
    made = []
    for i in range(5):
        clock.advance(1)
        made.append(post_team(client, f"team-{i}"))
    assert walk(client, "/admin/teams", 2) == [made[:2], made[2:4], made[4:]]
    everything = client.get("/admin/teams", headers=ADMIN).json()
    assert ([t["id"] for t in everything["data"]], everything["cursor"], everything["hasMore"]) == (
        made,
        None,
        False,
    )
    keys = [
        client.post(f"/admin/teams/{made[0]}/keys", headers=ADMIN, json={}).json()["data"]["id"]
        for _ in range(3)
    ]  # created in one millisecond: ordered by id within it
    assert walk(client, f"/admin/teams/{made[0]}/keys", 2) == [sorted(keys)[:2], sorted(keys)[2:]]
    assert walk(client, f"/admin/teams/{made[0]}/keys", 3) == [sorted(keys)]
    assert walk(client, "/admin/plans", 2) == [
        ["free", "hobby"],
        ["standard", "growth"],
        ["scale"],
    ]
    assert client.get("/admin/teams/nope/keys", headers=ADMIN).status_code == 404


def post_team(client: TestClient, name: str, plan: str = "free") -> str:
    team = client.post("/admin/teams", headers=ADMIN, json={"name": name, "plan": plan})
    assert team.status_code == 201, team.text
    return str(team.json()["data"]["id"])


def test_check_reports_the_team_and_the_key_remainder_whether_it_allows_or_refuses(
    client: TestClient, db: Database
) -> None:
    team_id = post_team(client, "acme", plan="hobby")
    capped = client.post(f"/admin/teams/{team_id}/keys", headers=ADMIN, json={"cap": 50})
    free = client.post(f"/admin/teams/{team_id}/keys", headers=ADMIN, json={})
    big = client.post(f"/admin/teams/{team_id}/keys", headers=ADMIN, json={"cap": 5000})
    capped_key, free_key, big_key = (k.json()["data"]["key"] for k in (capped, free, big))
    assert client.post(
        "/admin/charges", headers=ADMIN, json={"key": capped_key, "credits": 30}
    ).is_success
    assert client.post(
        "/admin/reservations", headers=ADMIN, json={"key": capped_key, "credits": 5}
    ).is_success  # team: 3000 - 30 - 5 = 2965; the capped key: 50 - 30 - 5 = 15

    def check(key: str, credits: int) -> object:
        answer = client.post("/admin/check", headers=ADMIN, json={"key": key, "credits": credits})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    def verdict(
        allowed: bool, required: int, remaining: int, key: int | None, by: str | None
    ) -> dict[str, object]:
        return {
            "allowed": allowed,
            "requiredCredits": required,
            "remainingCredits": remaining,
            "teamRemainingCredits": 2965,
            "keyRemainingCredits": key,
            "limitedBy": by,
        }

    assert check(capped_key, 10) == verdict(True, 10, 15, 15, None)
    assert check(capped_key, 16) == verdict(False, 16, 15, 15, "key cap")
    assert check(free_key, 10) == verdict(True, 10, 2965, None, None)
    assert check(free_key, 2966) == verdict(False, 2966, 2965, None, "team")
    assert check(big_key, 4000) == verdict(False, 4000, 2965, 5000, "team")
    # Neither fits: the tighter limit is named, and what the key can spend is the lower one.
    assert check(capped_key, 3000) == verdict(False, 3000, 15, 15, "key cap")
    assert check(big_key, 6000) == verdict(False, 6000, 2965, 5000, "team")


def test_head_on_an_admin_list_answers_like_get_without_a_body(admin: TestClient) -> None:
    head = admin.head("/admin/teams")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == admin.get("/admin/teams").headers["content-type"]
