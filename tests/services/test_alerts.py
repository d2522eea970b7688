"""Threshold alerts and their events: fired once per period by the charge that makes them true,
in its own transaction; never by a retry; re-armed by a new period."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from creditgate.domain.errors import Conflict, InsufficientCredits, NotFound
from creditgate.domain.instants import MS_PER_HOUR, parse_iso
from creditgate.services import alerts, dashboard, ledger, reservations, topups, webhooks
from creditgate.services.reservations import ReserveRequest
from creditgate.storage.database import Database
from creditgate.storage.tables import events, teams
from tests.helpers import charge, team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")  # hobby: 3,000 credits a month from the 1st


def team_events(db: Database, team_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(events.c.seq, events.c.type, events.c.payload)
            .where(events.c.team_id == team_id)
            .order_by(events.c.seq)
        ).all()
    return [{"seq": r.seq, "type": r.type, **json.loads(r.payload)} for r in rows]


def thresholds(db: Database, team_id: str) -> list[tuple[str, int]]:
    return [
        (e["data"]["ruleId"], e["data"]["creditsUsed"])
        for e in team_events(db, team_id)
        if e["type"] == "credits.threshold_crossed"
    ]


def test_a_new_team_has_the_default_rules(db: Database) -> None:
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    rules = alerts.list_rules(db, team.id)
    assert [(r.id, str(r.kind), r.threshold, r.key_id) for r in rules] == [
        ("default-80", "percent", 80, None),
        ("default-100", "percent", 100, None),
    ]


def test_the_charge_that_crosses_80_percent_fires_it_once(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    charge(db, key, 2_399, NOW)  # 79.97%
    assert thresholds(db, team.id) == []
    charge(db, key, 1, NOW)  # 2,400 = 80%
    assert thresholds(db, team.id) == [("default-80", 2_400)]
    charge(db, key, 100, NOW)
    charge(db, key, 100, NOW)
    assert thresholds(db, team.id) == [("default-80", 2_400)]
    charge(db, key, 400, NOW)  # 3,000 = 100%
    assert thresholds(db, team.id) == [("default-80", 2_400), ("default-100", 3_000)]
    event = team_events(db, team.id)[0]
    assert event["data"] == {
        "teamId": team.id,
        "keyId": None,
        "ruleId": "default-80",
        "kind": "percent",
        "threshold": 80,
        "periodStart": "2026-03-01T00:00:00.000Z",
        "periodEnd": "2026-04-01T00:00:00.000Z",
        "creditsUsed": 2_400,
        "budget": 3_000,
        "remainingCredits": 600,
        "chargeId": event["data"]["chargeId"],
    }
    with db.read() as conn:
        assert conn.execute(select(teams.c.event_seq).where(teams.c.id == team.id)).scalar() == 2


def test_a_retry_of_the_crossing_charge_fires_nothing_new(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    first = charge(db, key, 2_500, NOW, idem="crossing")
    again = charge(db, key, 2_500, NOW, idem="crossing")
    assert again.replayed and again.id == first.id
    assert thresholds(db, team.id) == [("default-80", 2_500)]


def test_a_refused_charge_fires_nothing(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    with pytest.raises(InsufficientCredits):
        charge(db, key, 3_001, NOW)
    assert team_events(db, team.id) == []


def test_a_new_period_re_arms_the_rules(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    charge(db, key, 2_400, NOW)
    april = parse_iso("2026-04-05T00:00:00.000Z")
    charge(db, key, 2_399, april)
    assert [r for r, _ in thresholds(db, team.id)] == ["default-80"]
    charge(db, key, 1, april)
    fired = [e["data"] for e in team_events(db, team.id)]
    assert [(d["ruleId"], d["periodStart"]) for d in fired] == [
        ("default-80", "2026-03-01T00:00:00.000Z"),
        ("default-80", "2026-04-01T00:00:00.000Z"),
    ]


def test_a_late_charge_into_a_closed_period_fires_nothing_for_it(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-02-01")
    charge(db, key, 2_900, NOW, at="2026-02-20T00:00:00Z")  # February's credits, expired
    assert thresholds(db, team.id) == []


def test_remaining_and_key_rules_and_a_key_reaching_its_cap(db: Database) -> None:
    team, key, key_id = team_with_key(db, NOW, anchor="2026-03-01", cap=1_000)
    low = alerts.add_rule(db, team.id, "remaining", 2_500, NOW)
    half = alerts.add_rule(db, team.id, "percent", 50, NOW, key_id=key_id)  # of its cap
    charge(db, key, 499, NOW)
    assert team_events(db, team.id) == []
    charge(db, key, 1, NOW)  # the key at 50% of its cap; the team has 2,500 left
    fired = [(e["type"], e["data"].get("ruleId")) for e in team_events(db, team.id)]
    assert fired == [
        ("credits.threshold_crossed", low.id),
        ("credits.threshold_crossed", half.id),
    ]
    charge(db, key, 500, NOW)  # its cap, exactly
    last = team_events(db, team.id)[-1]
    assert last["type"] == "key.cap_reached"
    assert (last["data"]["keyId"], last["data"]["cap"], last["data"]["creditsUsed"]) == (
        key_id,
        1_000,
        1_000,
    )
    assert len(team_events(db, team.id)) == 3


def test_a_top_up_and_a_hold_expired_uncharged_raise_events(db: Database) -> None:
    team, key, _ = team_with_key(db, NOW, anchor="2026-03-01")
    ledger.grant(db, ledger.GrantRequest(team.id, 700, "topup"), NOW)
    held = reservations.reserve(db, ReserveRequest(key, 50, ttl_ms=MS_PER_HOUR), NOW)
    settled = reservations.reserve(db, ReserveRequest(key, 60, ttl_ms=MS_PER_HOUR), NOW)
    reservations.settle(db, settled.id, 10, NOW, final=False)  # charged something: no event
    later = NOW + 2 * MS_PER_HOUR
    assert reservations.expire_due(db, later) == 2
    kinds = [(e["type"], e["data"]) for e in team_events(db, team.id)]
    assert kinds[0][0] == "credits.granted"
    assert (kinds[0][1]["kind"], kinds[0][1]["credits"], kinds[0][1]["remainingCredits"]) == (
        "topup",
        700,
        3_700,
    )
    assert [(t, d["reservationId"], d["credits"]) for t, d in kinds[1:]] == [
        ("reservation.expired", held.id, 50)
    ]


def test_a_rule_the_team_already_has_is_refused(db: Database) -> None:
    """Found by an outside test: duplicates were accepted and each fired for one crossing."""
    team, key, key_id = team_with_key(db, NOW, anchor="2026-03-01")
    with pytest.raises(Conflict, match="already has this rule: default-80"):
        alerts.add_rule(db, team.id, "percent", 80, NOW)
    alerts.add_rule(db, team.id, "percent", 50, NOW)
    with pytest.raises(Conflict):
        alerts.add_rule(db, team.id, "percent", 50, NOW)
    alerts.add_rule(db, team.id, "percent", 50, NOW, key_id=key_id)  # a key's is another rule
    charge(db, key, 1_650, NOW)
    assert [r for r, _ in thresholds(db, team.id)].count("default-80") == 0
    assert len(thresholds(db, team.id)) == 2  # the team's 50% and the key's 50%, once each


def test_a_teams_page_does_not_name_the_operators_endpoints(db: Database) -> None:
    """Found by an outside test: a team saw the host of the operator's every-team endpoint."""
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    webhooks.add_endpoint(db, "http://svc:pw@billing-internal.example:8080/hook", NOW)
    webhooks.add_endpoint(db, "https://hooks.team.example/in", NOW, team_id=team.id)
    shown = dashboard.team_alerts(db, team.id, NOW)
    assert shown is not None
    assert {r.channel for r in shown.rules} == {"hooks.team.example, the operator's endpoint"}


def test_a_rule_on_another_teams_key_or_for_no_team_is_refused(db: Database) -> None:
    team, _, _ = team_with_key(db, NOW, anchor="2026-03-01")
    _, _, other_key = team_with_key(db, NOW, anchor="2026-03-01", name="other")
    with pytest.raises(NotFound):
        alerts.add_rule(db, team.id, "percent", 50, NOW, key_id=other_key)
    with pytest.raises(NotFound):
        alerts.add_rule(db, "no-such-team", "percent", 50, NOW)
    with pytest.raises(NotFound):
        topups.add_rule(db, "no-such-team", 10, 10, NOW)
    assert [r.id for r in alerts.list_rules(db, team.id)] == ["default-80", "default-100"]
