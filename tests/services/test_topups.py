"""Automatic top-ups: granted in the transaction of the charge that leaves the team under the
rule's threshold; at most K a period; never twice for a retry; re-armed by a new period."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import MS_PER_DAY, parse_iso
from creditgate.services import account, teams, topups
from creditgate.storage.database import Database
from creditgate.storage.tables import events, grants
from tests.helpers import charge, team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")


def left(db: Database, team_id: str, at: int = NOW) -> int:
    return account.credit_usage(db, teams.get_team(db, team_id), at).remaining


def topup_grants(db: Database, team_id: str) -> list[tuple[int, int | None, str]]:
    with db.read() as conn:
        rows = conn.execute(
            select(grants.c.amount, grants.c.expires_ms, grants.c.note)
            .where(grants.c.team_id == team_id, grants.c.kind == "topup")
            .order_by(grants.c.created_ms, grants.c.id)
        ).all()
    return [(int(r.amount), r.expires_ms, r.note) for r in rows]


def test_a_charge_that_leaves_the_team_under_the_threshold_tops_it_up(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")  # hobby: 3,000
    rule = topups.add_rule(db, team.id, 500, 1_000, NOW, expires_days=30, max_per_period=2)
    charge(db, key, 2_400, NOW)
    assert left(db, team.id) == 600 and topup_grants(db, team.id) == []
    result = charge(db, key, 200, NOW)  # 400 left: under 500
    assert result.remaining_credits == 1_400  # the answer already counts the top-up
    assert topup_grants(db, team.id) == [(1_000, NOW + 30 * MS_PER_DAY, f"top-up {rule.id}")]
    with db.read() as conn:
        kinds = [json.loads(p)["type"] for (p,) in conn.execute(select(events.c.payload))]
    assert kinds.count("credits.granted") == 1
    charge(db, key, 1_000, NOW)  # 400 left again: the second and last of this period
    charge(db, key, 1_000, NOW)  # 400 left: none more this period
    assert len(topup_grants(db, team.id)) == 2
    assert left(db, team.id) == 400
    [(found, period, count)] = topups.list_rules(db, team.id)
    assert (found.id, period, count) == (rule.id, parse_iso("2026-03-01T00:00:00Z"), 2)
    april = parse_iso("2026-04-02T00:00:00Z")  # a new period: 3,000 + what did not expire
    charge(db, key, 3_000, april)
    assert len(topup_grants(db, team.id)) == 3


def test_a_retry_of_the_charge_grants_nothing_more(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    topups.add_rule(db, team.id, 500, 1_000, NOW)
    first = charge(db, key, 2_600, NOW, idem="c1")
    again = charge(db, key, 2_600, NOW, idem="c1")
    assert again.replayed and again.remaining_credits == first.remaining_credits == 1_400
    assert len(topup_grants(db, team.id)) == 1


def test_top_up_rules_are_checked_and_a_bad_one_changes_nothing(db: Database) -> None:
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    for below, credits, days, most, field in (
        (0, 10, None, 1, "below"),
        (10, 0, None, 1, "credits"),
        (10, 10, 0, 1, "expiresDays"),
        (10, 10, None, 0, "maxPerPeriod"),
        (10, True, None, 1, "credits"),
    ):
        with pytest.raises(InvalidInput) as refused:
            topups.add_rule(
                db, team.id, below, credits, NOW, expires_days=days, max_per_period=most
            )
        assert refused.value.details["field"] == field
    assert topups.list_rules(db, team.id) == []
