"""Every admin route declares its answer model (http/admin/<noun>.py) and answers with it: the
declarations walked, each route called in a test app, each answer validated against the model
it declares; and no answer is a hand-built dict (the dispatcher renders models only, and every
reply the walk saw was one)."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

from creditgate.http.admin import ROUTES, route
from creditgate.http.admin.route import AdminRoute, AnswerMismatch, Reply, render
from creditgate.services.wire import Answer, ExportStream, Team
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN

BY_ID = {r.operation_id: r for r in ROUTES}

# Each route's call, in an order that leaves the next one something to act on: the operation
# id, the path's values (from what earlier answers made) and the body.
Ids = dict[str, str]
CALLS: list[tuple[str, Callable[[Ids], dict[str, str]], Any]] = [
    ("createPlan", lambda i: {}, {"id": "p50", "credits": 50_000}),
    ("listPlans", lambda i: {}, None),
    (
        "replacePlan",
        lambda i: {"plan_id": "p50"},
        {"credits": 40_000, "interval": "month", "concurrency": 2, "scrapeRpm": 9, "crawlRpm": 1},
    ),
    ("updatePlan", lambda i: {"plan_id": "p50"}, {"credits": 30_000}),
    ("createTeam", lambda i: {}, {"name": "declared", "plan": "p50"}),
    ("listTeams", lambda i: {}, None),
    ("getTeam", lambda i: {"team_id": i["team"]}, None),
    ("updateTeam", lambda i: {"team_id": i["team"]}, {"allowOverage": True}),
    ("getBalance", lambda i: {"team_id": i["team"]}, None),
    ("createKey", lambda i: {"team_id": i["team"]}, {"name": "ci"}),
    ("listKeys", lambda i: {"team_id": i["team"]}, None),
    ("updateKey", lambda i: {"key_id": i["key"]}, {"rpm": 5}),
    ("grantCredits", lambda i: {"team_id": i["team"]}, {"credits": 10, "idempotencyKey": "g"}),
    ("recordCharge", lambda i: {}, lambda i: {"keyId": i["key"], "credits": 3}),
    ("recordCharges", lambda i: {}, lambda i: {"events": [{"keyId": i["key"], "credits": 1}]}),
    ("checkCredits", lambda i: {}, lambda i: {"keyId": i["key"], "credits": 1}),
    ("reserveCredits", lambda i: {}, lambda i: {"keyId": i["key"], "credits": 5}),
    ("getReservation", lambda i: {"reservation_id": i["hold"]}, None),
    ("settleReservation", lambda i: {"reservation_id": i["hold"]}, {"credits": 2}),
    ("releaseReservation", lambda i: {"reservation_id": i["hold"]}, None),
    ("getUsage", lambda i: {"team_id": i["team"]}, None),
    ("addAlertRule", lambda i: {"team_id": i["team"]}, {"kind": "percent", "threshold": 1}),
    ("listAlertRules", lambda i: {"team_id": i["team"]}, None),
    ("listFiredAlerts", lambda i: {"team_id": i["team"]}, None),
    ("removeAlertRule", lambda i: {"team_id": i["team"], "rule_id": i["rule"]}, None),
    ("addTopUpRule", lambda i: {"team_id": i["team"]}, {"below": 5, "credits": 5}),
    ("listTopUpRules", lambda i: {"team_id": i["team"]}, None),
    ("removeTopUpRule", lambda i: {"team_id": i["team"], "rule_id": i["topup"]}, None),
    ("addWebhook", lambda i: {}, lambda i: {"url": "http://127.0.0.1:9/h", "teamId": i["team"]}),
    ("listWebhooks", lambda i: {}, None),
    ("rotateWebhookSecret", lambda i: {"endpoint_id": i["hook"]}, None),
    ("testWebhook", lambda i: {"endpoint_id": i["hook"]}, None),
    ("listWebhookDeliveries", lambda i: {"endpoint_id": i["hook"]}, None),
    ("disableWebhook", lambda i: {"endpoint_id": i["hook"]}, None),
    ("listGrants", lambda i: {"team_id": i["team"]}, None),
    ("listEntries", lambda i: {"team_id": i["team"]}, None),
    ("listReservations", lambda i: {"team_id": i["team"]}, None),
    ("listJobs", lambda i: {"team_id": i["team"]}, None),
    ("exportLedger", lambda i: {"team_id": i["team"]}, None),
    ("rotateKey", lambda i: {"key_id": i["key"]}, None),
    ("revokeKey", lambda i: {"key_id": i["key"]}, None),
]
# What each answer names, for the calls after it.
KEEP = {
    "createTeam": "team",
    "createKey": "key",
    "reserveCredits": "hold",
    "addAlertRule": "rule",
    "addTopUpRule": "topup",
    "addWebhook": "hook",
}
QUERIES = {"exportLedger": "?what=entries", "listPlans": "?limit=1", "getUsage": "?byKey=true"}


def test_every_route_declares_an_answer_model_and_a_handler_that_returns_a_reply() -> None:
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    for declared in ROUTES:
        assert issubclass(declared.answer, Answer), declared.operation_id
        returns = typing.get_type_hints(declared.handler)["return"]
        assert returns is Reply, (declared.operation_id, returns)
        if declared.body is not None:
            assert issubclass(declared.body, BaseModel), declared.operation_id


def test_the_dispatcher_renders_only_the_declared_model() -> None:
    get_team = BY_ID["getTeam"]
    team = Team(
        id="t",
        name="n",
        plan="free",
        anchor="a",
        suspended=False,
        allowOverage=False,
        createdAt="c",
    )
    assert render(get_team, Reply(team)).status_code == 200
    for wrong in (team.render(), [team]):  # a hand-built dict; a list for one item
        with pytest.raises(AnswerMismatch):
            render(get_team, Reply(wrong))  # type: ignore[arg-type]  # what a bug would give
    with pytest.raises(AnswerMismatch):  # a declared 200 answered 201
        render(get_team, Reply(team, 201))
    with pytest.raises(AnswerMismatch):  # a list route answered one item
        render(BY_ID["listTeams"], Reply(team))
    with pytest.raises(AnswerMismatch):  # a subclass (a key with its secret) is not the model
        render(BY_ID["listKeys"], Reply([_new_key()]))


def test_every_admin_route_answers_the_model_it_declares(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[AdminRoute, Reply]] = []
    real = route.render

    def recording(declared: AdminRoute, reply: Reply) -> Any:
        seen.append((declared, reply))
        return real(declared, reply)

    monkeypatch.setattr(route, "render", recording)
    assert sorted(op for op, _p, _b in CALLS) == sorted(BY_ID), "a route without a call here"
    ids: Ids = {}
    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    for operation_id, path_of, body in CALLS:
        declared = BY_ID[operation_id]
        path = declared.path.format(**path_of(ids)) + QUERIES.get(operation_id, "")
        sent = body(ids) if callable(body) else body
        answer = client.request(declared.method, path, json=sent)
        assert answer.status_code in declared.status, (operation_id, answer.text)
        if declared.streams:
            assert answer.headers["content-type"].startswith("text/csv")
            continue
        data = answer.json()["data"]
        for item in data if declared.many else [data]:
            assert declared.answer.model_validate(item).render() == item, operation_id
        assert ("hasMore" in answer.json()) == declared.pages, operation_id
        if operation_id in KEEP:
            ids[KEEP[operation_id]] = data["id"]
    assert sorted(r.operation_id for r, _reply in seen) == sorted(BY_ID)
    for declared, reply in seen:  # what each handler returned, before rendering
        items = reply.data if isinstance(reply.data, list) else [reply.data]
        if declared.answer is ExportStream:
            continue
        assert all(type(i) is declared.answer for i in items), declared.operation_id


def _new_key() -> Answer:
    from creditgate.services.wire import NewApiKey

    return NewApiKey(
        id="k",
        teamId="t",
        name="n",
        hint="fc-...abcd",
        cap=None,
        createdAt="c",
        revokedAt=None,
        expiresAt=None,
        rpm=None,
        rotatedFrom=None,
        metadata=None,
        lastUsedAt=None,
        key="fc-x",
    )
