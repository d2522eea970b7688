"""Changing a team's plan: limits at once; credits from the next period, or, `now`, the
current period raised to the new plan's by an entry of the difference."""

from __future__ import annotations

import json

from sqlalchemy import select

from creditgate.domain.instants import parse_iso
from creditgate.services import account, audit, teams
from creditgate.storage.database import Database
from creditgate.storage.tables import entries, events
from tests.helpers import charge, team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")
APRIL = parse_iso("2026-04-02T00:00:00Z")


def remaining(db: Database, team_id: str, at: int) -> tuple[int, int]:
    usage = account.credit_usage(db, teams.get_team(db, team_id), at)
    return usage.remaining, usage.plan_credits


def grant_entries(db: Database, team_id: str) -> list[tuple[int, str | None]]:
    with db.read() as conn:
        rows = conn.execute(
            select(entries.c.amount, entries.c.note)
            .where(entries.c.team_id == team_id, entries.c.kind == "grant")
            .order_by(entries.c.recorded_ms, entries.c.amount)
        ).all()
    return [(int(r.amount), r.note) for r in rows]


def test_an_upgrade_now_raises_this_period_to_the_new_plans_credits(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    charge(db, key, 1_000, NOW)
    changed = teams.update_team(db, team.id, NOW, plan_id="standard", plan_now=True)
    assert changed.plan_id == "standard"
    assert remaining(db, team.id, NOW) == (99_000, 100_000)
    assert grant_entries(db, team.id) == [(3_000, "plan hobby"), (97_000, "plan hobby to standard")]
    with db.read() as conn:
        body = json.loads(conn.execute(select(events.c.payload)).scalar_one())
    assert (body["type"], body["data"]["creditsAdded"], body["data"]["atOnce"]) == (
        "plan.changed",
        97_000,
        True,
    )
    assert remaining(db, team.id, APRIL) == (100_000, 100_000)  # April: standard's own
    assert audit.verify(db).ok


def test_an_upgrade_without_now_brings_its_credits_with_the_next_period(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, plan="hobby", anchor="2026-03-01")
    charge(db, key, 1_000, NOW)
    teams.update_team(db, team.id, NOW, plan_id="standard")
    assert remaining(db, team.id, NOW) == (2_000, 3_000)
    assert remaining(db, team.id, APRIL) == (100_000, 100_000)


def test_a_downgrade_takes_nothing_back_and_the_next_period_is_the_new_plans(
    db: Database,
) -> None:
    team, _, _ = team_with_key(db, NOW, plan="standard", anchor="2026-03-01")
    teams.update_team(db, team.id, NOW, plan_id="hobby", plan_now=True)
    assert remaining(db, team.id, NOW) == (100_000, 100_000)
    assert remaining(db, team.id, APRIL) == (3_000, 3_000)
    assert grant_entries(db, team.id)[-1] == (3_000, "plan hobby")


def test_a_team_moved_from_a_once_plan_to_a_monthly_one_gets_its_credits_monthly(
    db: Database,
) -> None:
    """It used to keep the free plan's 500 for ever: the once plan had scheduled no rollover."""
    team, _, _ = team_with_key(db, NOW, plan="free", anchor="2026-03-01")
    teams.update_team(db, team.id, NOW, plan_id="hobby")
    assert remaining(db, team.id, NOW) == (500, 500)
    assert remaining(db, team.id, APRIL) == (3_500, 3_000)  # the free 500 never expire
    may = parse_iso("2026-05-02T00:00:00Z")
    assert remaining(db, team.id, may) == (3_500, 3_000)  # April's unused 3,000 expired


def test_a_once_plan_upgraded_now_in_its_first_month_is_raised_in_place(db: Database) -> None:
    team, _, _ = team_with_key(db, NOW, plan="free", anchor="2026-03-01")
    teams.update_team(db, team.id, NOW, plan_id="hobby", plan_now=True)
    assert remaining(db, team.id, NOW) == (3_000, 3_000)
    assert grant_entries(db, team.id) == [(500, "plan free"), (2_500, "plan free to hobby")]
