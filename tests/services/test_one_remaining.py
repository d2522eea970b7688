"""One figure of remaining (issue #17, item 5): the alerts, their webhook payloads, top-ups, the
dashboard, the account API and the settlement's own answer all read the balance as the
operation leaves it — a settlement's own hold already closed or reduced.

Found by an attacker: a "6 or fewer remaining" rule fired while 10 credits remained; the 80%
payload said 4 left when 9 were; the 100% payload and the dashboard said -1 when 0 were. The
alert check ran inside the charge, before the settlement's hold was changed, so the hold that
the charge itself spends was still subtracted: all of what it held for a final settlement, the
part just settled for a partial one. Each comment below says what was read before the fix.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from creditgate.domain.instants import MS_PER_HOUR, parse_iso
from creditgate.domain.plans import Plan
from creditgate.services import account, alerts, dashboard, plans, reservations, teams, topups
from creditgate.services.reservations import ReservationView, ReserveRequest
from creditgate.storage.database import Database
from creditgate.storage.tables import events, grants
from tests.helpers import charge, team_with_key

NOW = parse_iso("2026-03-10T12:00:00Z")
TWENTY = Plan("twenty", 20, "month", 5, 100, 100)  # 20 credits a month from the 1st


def twenty_credits(db: Database, cap: int | None = None) -> tuple[str, str, str]:
    """A team with 20 credits this period: (team id, its key, the key's id)."""
    plans.create_plan(db, TWENTY, NOW)
    team, key, key_id = team_with_key(db, NOW, plan=TWENTY.id, anchor="2026-03-01", cap=cap)
    return team.id, key, key_id


def team_events(db: Database, team_id: str) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(
            select(events.c.payload).where(events.c.team_id == team_id).order_by(events.c.seq)
        ).all()
    return [json.loads(r.payload) for r in rows]


def fired(db: Database, team_id: str) -> list[tuple[str | None, int]]:
    """(rule id, remainingCredits) of each threshold event, in order."""
    return [
        (e["data"]["ruleId"], e["data"]["remainingCredits"])
        for e in team_events(db, team_id)
        if e["type"] == "credits.threshold_crossed"
    ]


def faces(db: Database, team_id: str, key: str) -> dict[str, int | None]:
    """The team's remaining credits as each face shows it now."""
    snap = account.snapshot(db, key, NOW)
    assert snap is not None
    view = dashboard.team_view(db, team_id, NOW)
    [line] = [t for t in dashboard.overview(db, NOW).teams if t.team.id == team_id]
    return {
        "credit-usage (hot read)": account.credit_usage_from(db, snap, NOW).remaining,
        "credit-usage": account.credit_usage(db, teams.get_team(db, team_id), NOW).remaining,
        "dashboard team page": view.usage.remaining,
        "dashboard overview": line.remaining,
    }


def alert_lines(db: Database, team_id: str) -> list[str]:
    """The dashboard's lines for the alerts fired, newest first."""
    shown = dashboard.team_alerts(db, team_id, NOW)
    assert shown is not None
    return [f.detail for f in shown.fired]


def everywhere(n: int) -> dict[str, int | None]:
    return dict.fromkeys(
        ("credit-usage (hot read)", "credit-usage", "dashboard team page", "dashboard overview"), n
    )


def hold(db: Database, key: str, credits: int, job_id: str | None = None) -> str:
    request = ReserveRequest(key, credits, ttl_ms=MS_PER_HOUR, endpoint="crawl", job_id=job_id)
    return reservations.reserve(db, request, NOW).id


def settle(
    db: Database, rid: str, credits: int, *, final: bool, as_total: bool = False
) -> ReservationView:
    return reservations.settle(db, rid, credits, NOW, final=final, as_total=as_total)


def test_a_remaining_rule_reads_the_balance_after_the_settled_hold_closes(db: Database) -> None:
    team_id, key, _ = twenty_credits(db)
    low = alerts.add_rule(db, team_id, "remaining", 6, NOW)
    done = settle(db, hold(db, key, 10), 10, final=True)
    assert done.remaining_credits == 10
    assert fired(db, team_id) == []  # 10 left: "6 or fewer" is not true (it fired, saying 0)
    assert faces(db, team_id, key) == everywhere(10)
    done = settle(db, hold(db, key, 5), 5, final=True)  # 5 left: now it is
    assert done.remaining_credits == 5
    assert fired(db, team_id) == [(low.id, 5)]
    assert faces(db, team_id, key) == everywhere(5)


def test_the_80_percent_payload_says_what_the_account_api_says(db: Database) -> None:
    team_id, key, _ = twenty_credits(db)
    charge(db, key, 7, NOW)  # 13 left
    rid = hold(db, key, 13)
    done = settle(db, rid, 9, final=True)  # 16 used = 80%, 4 left, the rest of the hold freed
    assert fired(db, team_id) == [("default-80", 4)]  # said -9: all 13 of the hold counted
    assert done.remaining_credits == 4
    assert faces(db, team_id, key) == everywhere(4)
    [shown] = alert_lines(db, team_id)
    assert shown.startswith("16 used, 4 left ")


def test_the_100_percent_payload_and_the_dashboard_say_0_at_exactly_0(db: Database) -> None:
    team_id, key, _ = twenty_credits(db)
    charge(db, key, 19, NOW)  # 95%: the 80% rule fires with 1 left
    done = settle(db, hold(db, key, 1), 1, final=True)  # exactly 0 left
    assert done.remaining_credits == 0
    assert fired(db, team_id) == [("default-80", 1), ("default-100", 0)]  # said -1
    assert faces(db, team_id, key) == everywhere(0)
    assert alert_lines(db, team_id)[0].startswith("20 used, 0 left ")  # newest first


def test_a_partial_settle_of_a_job_reads_the_hold_it_leaves(db: Database) -> None:
    """A running job's settlements (as_total, not final): each moves credits from its hold to
    its usage, so the team's remaining does not move; alerts read that figure."""
    team_id, key, _ = twenty_credits(db)
    low = alerts.add_rule(db, team_id, "remaining", 6, NOW)
    half = alerts.add_rule(db, team_id, "percent", 50, NOW)
    rid = hold(db, key, 12, job_id="crawl-1")  # 8 left
    assert faces(db, team_id, key) == everywhere(8)
    step = settle(db, rid, 5, final=False, as_total=True)  # 5 used, 7 still held: 8 left
    assert (step.settled, step.holding, step.remaining_credits) == (5, 7, 8)
    assert fired(db, team_id) == []  # the 6-or-fewer rule fired, saying 3
    assert faces(db, team_id, key) == everywhere(8)
    step = settle(db, rid, 10, final=False, as_total=True)  # 10 used = 50%, 2 held: 8 left
    assert (step.settled, step.holding, step.remaining_credits) == (10, 2, 8)
    assert fired(db, team_id) == [(half.id, 8)]  # said 3 (the 5 just settled counted twice)
    assert faces(db, team_id, key) == everywhere(8)
    step = settle(db, rid, 15, final=True, as_total=True)  # 15 used, 3 past the hold: 5 left
    assert (step.settled, step.holding, step.remaining_credits) == (15, 0, 5)
    assert fired(db, team_id) == [(half.id, 8), (low.id, 5)]
    assert faces(db, team_id, key) == everywhere(5)


def test_a_keys_remaining_rule_reads_its_cap_after_the_settled_hold_closes(
    db: Database,
) -> None:
    team_id, key, key_id = twenty_credits(db, cap=15)
    low = alerts.add_rule(db, team_id, "remaining", 4, NOW, key_id=key_id)
    settle(db, hold(db, key, 10), 10, final=True)  # the key has 5 of its cap left
    assert fired(db, team_id) == []  # fired, saying -5: its own hold counted against the cap
    settle(db, hold(db, key, 3), 1, final=True)  # 4 left of its cap
    assert fired(db, team_id) == [(low.id, 4)]
    assert faces(db, team_id, key) == everywhere(9)


def topup_grants(db: Database, team_id: str) -> list[int]:
    with db.read() as conn:
        rows = conn.execute(
            select(grants.c.amount).where(grants.c.team_id == team_id, grants.c.kind == "topup")
        ).all()
    return [int(r.amount) for r in rows]


def test_a_top_up_reads_the_balance_after_the_settled_hold_closes(db: Database) -> None:
    team_id, key, _ = twenty_credits(db)
    topups.add_rule(db, team_id, 6, 100, NOW)  # under 6 left: 100 more
    settle(db, hold(db, key, 10), 10, final=True)  # 10 left
    assert topup_grants(db, team_id) == []  # it was topped up: 0 was read
    assert faces(db, team_id, key) == everywhere(10)
    done = settle(db, hold(db, key, 8), 5, final=True)  # 5 left: under 6
    assert topup_grants(db, team_id) == [100]
    assert done.remaining_credits == 105
    [granted] = [e["data"] for e in team_events(db, team_id) if e["type"] == "credits.granted"]
    assert granted["remainingCredits"] == 105
    assert faces(db, team_id, key) == everywhere(105)
