"""The gateway's request lines carry the route table's row, the hold and the charge."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from creditgate.domain.instants import now
from creditgate.storage.database import Database
from tests.gateway.conftest import Fake, Gateway
from tests.helpers import bearer, team_with_key


def test_a_metered_request_logs_what_it_held_and_what_it_was_charged(
    db: Database, fake: Fake, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    team, key, _ = team_with_key(db, now())
    caplog.set_level(logging.INFO, logger="creditgate.requests")
    body = {"url": "https://example.com", "formats": ["json"]}
    response = httpx.post(f"{gateway.url}/v2/scrape", json=body, headers=bearer(key))
    assert response.status_code == 200
    deadline = time.monotonic() + 5  # the line is written once the answer's last byte is sent
    while not (lines := [r for r in caplog.records if r.name == "creditgate.requests"]):
        assert time.monotonic() < deadline, "no request line"
        time.sleep(0.01)
    (record,) = lines
    fields = record.fields  # type: ignore[attr-defined]
    assert (fields["route"], fields["team"], fields["held"], fields["charged"]) == (
        "/v2/scrape",
        team.id,
        5,
        5,
    )
