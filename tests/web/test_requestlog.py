"""One log line per request, with what was asked, answered, for whom and at what cost."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from creditgate.storage.database import Database
from creditgate.web.requestlog import JsonFormatter
from tests.conftest import Clock
from tests.helpers import bearer, team_with_key


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "creditgate.requests"]


def test_an_account_request_is_one_line_with_its_route_team_and_key_hint(
    client: TestClient, db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    team, key, _ = team_with_key(db, clock.now)
    caplog.set_level(logging.INFO, logger="creditgate.requests")
    response = client.get("/v2/team/credit-usage", headers={**bearer(key), "X-Request-Id": "r-1"})
    assert response.headers["x-request-id"] == "r-1"
    (record,) = _request_lines(caplog)
    fields = record.fields  # type: ignore[attr-defined]
    assert {k: v for k, v in fields.items() if k != "ms"} == {
        "method": "GET",
        "route": "/v2/team/credit-usage",
        "status": 200,
        "team": team.id,
        "key": f"fc-...{key[-4:]}",
        "held": 0,
        "charged": 0,
        "outcome": "admitted",
        "requestId": "r-1",
    }
    assert record.getMessage().startswith(f"GET /v2/team/credit-usage 200 team={team.id} ")
    assert key not in record.getMessage()


def test_refusals_are_logged_too_and_a_bad_request_id_is_replaced(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="creditgate.requests")
    refused = client.get("/v2/team/credit-usage/", headers={"X-Request-Id": "bad id\t!"})
    unauthorized = client.get("/v2/team/credit-usage")
    assert (refused.status_code, unauthorized.status_code) == (400, 401)
    first, second = (r.fields for r in _request_lines(caplog))  # type: ignore[attr-defined]
    assert (first["route"], first["status"]) == ("(no route)", 400)
    assert (second["route"], second["status"], second["team"]) == (
        "/v2/team/credit-usage",
        401,
        None,
    )
    assert len(first["requestId"]) == 32 and first["requestId"] == refused.headers["x-request-id"]


def test_the_json_format_is_one_object_per_line() -> None:
    record = logging.LogRecord("creditgate.requests", logging.INFO, "f", 1, "GET / 200", (), None)
    record.fields = {"method": "GET", "status": 200}
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"], line["status"]) == (
        "info",
        "creditgate.requests",
        "GET / 200",
        200,
    )
    assert line["time"].endswith("Z")
