"""One log line per request, with what was asked, answered, for whom and at what cost."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from starlette.testclient import TestClient

from creditgate.storage.database import Database
from creditgate.web.requestlog import BatchedStreamHandler, JsonFormatter, TextFormatter
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


def test_the_text_format_is_loggings_default_format() -> None:
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    ours = TextFormatter()
    for created in (1_780_000_000.0, 1_780_000_000.999, 1_780_000_001.5, 1_780_000_000.25):
        record = logging.LogRecord(
            "creditgate.requests", logging.INFO, "f", 1, "GET / 200", (), None
        )
        record.created, record.msecs = created, (created % 1) * 1000
        assert ours.format(record) == plain.format(record)


def _record(level: int, text: str) -> logging.LogRecord:
    return logging.LogRecord("creditgate.requests", level, "f", 1, text, (), None)


def test_request_lines_are_written_in_batches_and_a_warning_at_once() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, seconds=3600)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.handle(_record(logging.INFO, "GET /a 200"))
    handler.handle(_record(logging.INFO, "GET /b 200"))
    assert stream.getvalue() == ""
    handler.handle(_record(logging.WARNING, "something"))
    assert stream.getvalue() == "INFO GET /a 200\nINFO GET /b 200\nWARNING something\n"
    handler.handle(_record(logging.INFO, "GET /c 200"))
    handler.flush()  # as logging.shutdown() does at exit
    assert stream.getvalue().endswith("WARNING something\nINFO GET /c 200\n")


def test_a_batch_is_written_when_it_is_due_or_full() -> None:
    full = io.StringIO()
    handler = BatchedStreamHandler(full, seconds=3600, limit=20)
    handler.handle(_record(logging.INFO, "0123456789"))
    assert full.getvalue() == ""
    handler.handle(_record(logging.INFO, "0123456789"))
    assert full.getvalue() == "0123456789\n0123456789\n"
    due = io.StringIO()
    handler = BatchedStreamHandler(due, seconds=0.01)
    handler.handle(_record(logging.INFO, "GET /a 200"))
    deadline = time.monotonic() + 10
    while due.getvalue() == "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert due.getvalue() == "GET /a 200\n"
