"""A live server with a team whose usage is known, shared by the SDK tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from creditgate.domain.instants import now
from creditgate.services import keys, ledger
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.helpers import team_with_key
from tests.server import live_server


@dataclass
class Scenario:
    url: str
    key: str
    plan_credits: int
    used_by: dict[str, int]


@pytest.fixture
def scenario(db: Database, database_url: str) -> Iterator[Scenario]:
    at = now()
    team, key, _ = team_with_key(db, at, plan="hobby", key_name="backend")
    other = keys.create_key(db, team.id, at, name="agent")
    for secret, credits in ((key, 120), (other.secret, 35), (key, 5)):
        ledger.charge(db, ledger.ChargeRequest(key=secret, credits=credits, endpoint="scrape"), at)
    with live_server(database_url, ADMIN_TOKEN) as url:
        yield Scenario(url, key, 3000, {"agent": 35, "backend": 125})
