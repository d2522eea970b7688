"""The OpenAPI document describes what the admin API answers, and the answers agree with it.

Every test client of the suite checks each admin answer against the document
(tests/openapi_support.py, installed by tests/conftest.py); the flow here goes through every
admin route, so each success schema is met by a real answer at least once.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.http import openapi
from creditgate.http.admin import ADMIN_ROUTES, ROUTES
from creditgate.storage.database import Database
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN, Clock
from tests.helpers import bearer
from tests.openapi_support import AnswerChecker, checker

ADMIN = bearer(ADMIN_TOKEN)


def test_every_admin_route_has_an_answer_schema_and_a_readable_operation_id() -> None:
    routes = {(r.method, r.path) for r in ROUTES}
    assert len(routes) == len(ROUTES), "a route is declared twice"
    ids = [r.operation_id for r in ROUTES]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids), ids
    document = openapi.build()
    for method, path in routes:
        op = document["paths"][path][method.lower()]
        statuses = sorted(op["responses"])
        assert "401" in statuses and "503" in statuses, (method, path)
        has_body = any(r.body is not None for r in ROUTES if (r.method, r.path) == (method, path))
        assert ("413" in statuses) == has_body, (method, path)
        assert ("404" in statuses) >= ("{" in path), (method, path)  # a path names something
        for status, response in op["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            name = schema["$ref"].rsplit("/", 1)[-1]
            envelope = document["components"]["schemas"][name]
            assert envelope["properties"]["success"]["const"] is status.startswith("2")
            if status.startswith("2"):
                assert envelope["additionalProperties"] is False
                assert ("hasMore" in envelope["properties"]) == name.endswith("Page")


def test_the_checker_refuses_an_answer_the_document_does_not_describe() -> None:
    check = AnswerChecker()
    team = {
        "id": "t",
        "name": "acme",
        "plan": "hobby",
        "anchor": "2026-08-01T00:00:00.000Z",
        "suspended": False,
        "allowOverage": False,
        "createdAt": "2026-08-01T00:00:00.000Z",
    }
    answer = {"success": True, "data": team}
    check.check("GET", "/admin/teams/t", 200, _json(answer))
    with pytest.raises(AssertionError, match="does not match"):
        check.check("GET", "/admin/teams/t", 200, _json({**answer, "data": {**team, "new": 1}}))
    with pytest.raises(AssertionError, match="does not match"):
        check.check("GET", "/admin/teams/t", 200, _json({**answer, "data": {"id": "t"}}))
    with pytest.raises(AssertionError, match="does not list"):
        check.check("GET", "/admin/teams/t", 402, _json({"success": False, "error": "x"}))
    with pytest.raises(AssertionError, match="does not match"):
        check.check("GET", "/admin/teams/t", 404, _json({"success": True}))
    assert check.template("/admin/teams/t/alerts/fired") == "/admin/teams/{team_id}/alerts/fired"
    assert check.template("/admin/teams/t/alerts/r1") == "/admin/teams/{team_id}/alerts/{rule_id}"


def test_the_suite_checks_every_admin_answer(client: TestClient) -> None:
    assert checker().hook in client.event_hooks["response"]


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def test_every_admin_route_answers_as_documented(
    client: TestClient, db: Database, clock: Clock
) -> None:
    """A team's whole life through every admin route: each answer validated (by the suite's
    hook, and by a checker of this test's own that also counts which routes answered what)."""
    mine = AnswerChecker()
    client.event_hooks["response"].append(mine.hook)
    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def call(method: str, path: str, expect: int, body: Any = None) -> Any:
        answer = client.request(method, path, json=body)
        assert answer.status_code == expect, (method, path, answer.text)
        return answer.json()

    # plans
    plan = call("POST", "/admin/plans", 201, {"id": "team-50k", "credits": 50_000})["data"]
    assert plan["interval"] == "month"
    call("POST", "/admin/plans", 409, {"id": "team-50k", "credits": 1})
    call("PUT", "/admin/plans/team-50k", 200, {**plan, "credits": 40_000})
    call("PATCH", "/admin/plans/team-50k", 200, {"credits": 30_000})
    call("PATCH", "/admin/plans/nope", 404, {"credits": 1})
    listed = call("GET", "/admin/plans?limit=2", 200)
    assert listed["hasMore"] is True and listed["cursor"]
    # teams
    team = call("POST", "/admin/teams", 201, {"name": "acme", "plan": "team-50k"})["data"]
    tid = team["id"]
    call("POST", "/admin/teams", 404, {"name": "n", "plan": "nope"})
    call("POST", "/admin/teams", 400, {"name": ""})
    call("GET", "/admin/teams", 200)
    call("GET", "/admin/teams?nope=1", 400)
    call("GET", f"/admin/teams/{tid}", 200)
    call("GET", "/admin/teams/nope", 404)
    call("PATCH", f"/admin/teams/{tid}", 200, {"name": "acme inc"})
    assert call("GET", f"/admin/teams/{tid}/balance", 200)["data"]["remainingCredits"] == 30_000
    # keys
    key = call("POST", f"/admin/teams/{tid}/keys", 201, {"name": "ci", "cap": 26_000})["data"]
    call("POST", f"/admin/teams/{tid}/keys", 409, {"name": "ci"})
    spare = call("POST", f"/admin/teams/{tid}/keys", 201, {})["data"]
    page = call("GET", f"/admin/teams/{tid}/keys?limit=1", 200)
    assert page["hasMore"] is True
    call("GET", f"/admin/teams/{tid}/keys?limit=1&cursor={page['cursor']}", 200)
    # webhooks and alerts, before the charges that fire them
    hook = call("POST", "/admin/webhooks", 201, {"url": "http://127.0.0.1:9/hook", "teamId": tid})
    hid = hook["data"]["id"]
    call("POST", "/admin/webhooks", 404, {"url": "http://127.0.0.1:9/hook", "teamId": "nope"})
    rule = call("POST", f"/admin/teams/{tid}/alerts", 201, {"kind": "remaining", "threshold": 5})
    call("GET", f"/admin/teams/{tid}/alerts", 200)
    # credits
    grant = {"credits": 500, "kind": "topup", "idempotencyKey": "g-1"}
    call("POST", f"/admin/teams/{tid}/grants", 201, grant)
    call("POST", f"/admin/teams/{tid}/grants", 200, grant)
    call("POST", f"/admin/teams/{tid}/grants", 409, {**grant, "credits": 9})
    charge = {"key": key["key"], "credits": 25_000, "idempotencyKey": "c-1", "endpoint": "scrape"}
    call("POST", "/admin/charges", 201, charge)
    call("POST", "/admin/charges", 200, charge)
    call("POST", "/admin/charges", 409, {**charge, "credits": 1})
    call("POST", "/admin/charges", 402, {"keyId": spare["id"], "credits": 10_000})
    call("POST", "/admin/charges", 404, {"keyId": "nope", "credits": 1})
    call("POST", "/admin/charges", 413, {"key": "x" * 2_000_000, "credits": 1})
    batch = call(
        "POST",
        "/admin/charges/batch",
        200,
        {"events": [{"keyId": spare["id"], "credits": 1}, {"keyId": "nope", "credits": 1}]},
    )["data"]
    assert [o["status"] for o in batch] == ["accepted", "rejected"]
    verdict = call("POST", "/admin/check", 200, {"keyId": key["id"], "credits": 2_000})["data"]
    assert verdict["allowed"] is False and verdict["limitedBy"] == "key cap"
    # reservations
    hold = {"keyId": spare["id"], "credits": 100, "idempotencyKey": "r-1"}
    rid = call("POST", "/admin/reservations", 201, hold)["data"]["id"]
    call("POST", "/admin/reservations", 200, hold)
    call("POST", "/admin/reservations", 402, {"keyId": spare["id"], "credits": 100_000})
    call("GET", f"/admin/reservations/{rid}", 200)
    call("GET", "/admin/reservations/nope", 404)
    call("POST", f"/admin/reservations/{rid}/settle", 200, {"credits": 40, "final": True})
    call("POST", f"/admin/reservations/{rid}/settle", 409, {"credits": 1})
    other = call("POST", "/admin/reservations", 201, {"keyId": spare["id"], "credits": 5})
    call("POST", f"/admin/reservations/{other['data']['id']}/release", 200)
    # what happened
    usage = call("GET", f"/admin/teams/{tid}/usage?byKey=true", 200)["data"]
    assert sum(p["creditsUsed"] for p in usage) == 25_000 + 1 + 40
    assert call("GET", f"/admin/teams/{tid}/alerts/fired", 200)["data"] != []
    call("DELETE", f"/admin/teams/{tid}/alerts/{rule['data']['id']}", 200)
    call("DELETE", f"/admin/teams/{tid}/alerts/nope", 404)
    call("GET", f"/admin/webhooks?teamId={tid}", 200)
    call("POST", f"/admin/webhooks/{hid}/test", 200)
    assert call("GET", f"/admin/webhooks/{hid}/deliveries", 200)["data"] != []
    call("POST", f"/admin/webhooks/{hid}/rotate", 200)
    call("DELETE", f"/admin/webhooks/{hid}", 200)
    # the ledger on view and on export
    for listing in ("grants", "entries", "reservations", "jobs"):
        assert "data" in call("GET", f"/admin/teams/{tid}/{listing}?limit=2", 200)
    call("GET", "/admin/teams/nope/entries", 404)
    exported = client.get(f"/admin/teams/{tid}/export?what=entries&format=ndjson", headers=ADMIN)
    assert exported.status_code == 200 and exported.text.count("\n") >= 3
    # top-ups, key changes, rotation
    topup = call("POST", f"/admin/teams/{tid}/topups", 201, {"below": 10, "credits": 5})
    call("GET", f"/admin/teams/{tid}/topups", 200)
    call("DELETE", f"/admin/teams/{tid}/topups/{topup['data']['id']}", 200)
    call("PATCH", f"/admin/keys/{key['id']}", 200, {"metadata": {"owner": "ci"}})
    rotated = call("POST", f"/admin/keys/{key['id']}/rotate", 201, {"overlapSeconds": 60})
    assert rotated["data"]["replaced"]["id"] == key["id"]
    call("POST", f"/admin/keys/{spare['id']}/revoke", 200)
    call("POST", "/admin/check", 409, {"keyId": spare["id"], "credits": 1})
    call("POST", "/admin/keys/nope/revoke", 404)
    del client.headers["Authorization"]
    call("GET", "/admin/teams", 401)

    answered = {(m, p) for m, p, status in mine.seen if status < 300}
    routes = {(m, p) for m, p, _h, _s in ADMIN_ROUTES}
    assert sorted(routes - answered) == [], "routes this flow never saw succeed"
    for route in ROUTES:
        for status in route.status:
            assert (route.method, route.path, status) in mine.seen, (route.path, status)


def test_a_disabled_admin_api_answers_as_documented(db: Database, clock: Clock) -> None:
    ctx = AppContext(db=db, admin_token=None, clock=clock)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        client.event_hooks["response"].append(checker().hook)
        for method, path, _handler, _summary in ADMIN_ROUTES:
            answer = client.request(method, re.sub(r"{\w+}", "x", path), headers=ADMIN)
            assert answer.status_code == 403, (method, path)
