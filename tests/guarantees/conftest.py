"""The hard-way tests of ledger promises 1, 2, 3 and 5: on PostgreSQL, through HTTP."""

from __future__ import annotations

import pytest

from creditgate.domain.instants import now
from creditgate.domain.plans import Plan
from creditgate.services import keys, ledger, plans, teams
from creditgate.storage.database import Database


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> int:
    """1 normally; 5 with --big."""
    return 5 if request.config.getoption("--big") else 1


def funded_team(db: Database, credits: int, *, key_count: int = 1) -> tuple[str, list[str]]:
    """A team whose only credits are `credits` (plan of 0 plus one pack)."""
    at = now()
    plans.create_plan(db, Plan("payg", 0, "month", 1000, 10_000, 10_000), at)
    team = teams.create_team(db, "race", at, plan_id="payg")
    ledger.grant(db, ledger.GrantRequest(team.id, credits), at)
    secrets = [keys.create_key(db, team.id, at, name=f"k{i}").secret for i in range(key_count)]
    return team.id, secrets
