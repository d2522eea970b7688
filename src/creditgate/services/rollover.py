"""Bringing a team's grants up to date: new periods' plan credits in, expired credits out."""

from __future__ import annotations

from sqlalchemy import Connection

from creditgate.domain.errors import NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.domain.periods import Period, period, period_at
from creditgate.domain.plans import Plan
from creditgate.domain.teams import Team
from creditgate.storage import ledger, plans, reservations, teams
from creditgate.storage.ledger import EntryLine, NewGrant


def needs_rollover(team: Team, now: Instant) -> bool:
    """A new team starts with next_rollover = its anchor, so its first credits arrive too."""
    return team.next_rollover is not None and team.next_rollover <= now


def roll_forward(conn: Connection, team: Team, plan: Plan, now: Instant) -> None:
    """Grant plan credits for every period started by `now`, then record expiries.

    Call with the team's row locked. A team idle for months gets each missed period's grant and
    its expiry recorded, so the history says exactly what the team was entitled to and lost.
    """
    current = period_at(team.anchor, plan.renews, now)
    granted_through = team.granted_through
    if current is not None:
        first = 0
        if granted_through is not None:
            last = period_at(team.anchor, plan.renews, granted_through)
            first = current.index + 1 if last is None else last.index + 1
        for index in range(first, current.index + 1):
            _grant_plan_credits(conn, team, plan, period(team.anchor, plan.renews, index), now)
        granted_through = current.start
    for grant in ledger.grants_to_expire(conn, team.id, now):
        unused = max(grant.remaining, 0)
        if unused:
            ledger.insert_movement(
                conn,
                team.id,
                new_id(),
                [EntryLine("expiry", -unused, grant_id=grant.id)],
                occurred_at=grant.expires_at or now,
                recorded_at=now,
            )
            ledger.move_grant(conn, team.id, grant.id, -unused, unused)
        ledger.mark_expired(conn, team.id, grant.id, now)
    next_start = None if current is None or current.end is None else current.end
    if current is None:  # anchor in the future: nothing to do before it
        next_start = team.anchor
    candidates = [t for t in (next_start, ledger.next_expiry(conn, team.id)) if t is not None]
    teams.update_team(
        conn,
        team.id,
        granted_through_ms=granted_through,
        next_rollover_ms=min(candidates) if candidates else None,
    )


def _grant_plan_credits(
    conn: Connection, team: Team, plan: Plan, billing_period: Period, now: Instant
) -> None:
    if plan.credits <= 0:
        return
    grant_id = new_id(billing_period.start)
    ledger.insert_grant(
        conn,
        NewGrant(
            id=grant_id,
            team_id=team.id,
            kind="plan",
            amount=plan.credits,
            starts_at=billing_period.start,
            expires_at=billing_period.end,
            period_start=billing_period.start,
            note=f"plan {plan.id}",
            created_at=now,
        ),
    )
    ledger.insert_movement(
        conn,
        team.id,
        new_id(billing_period.start),
        [EntryLine("grant", plan.credits, grant_id=grant_id, note=f"plan {plan.id}")],
        occurred_at=billing_period.start,
        recorded_at=now,
    )


def lock_team(conn: Connection, team_id: str, now: Instant) -> tuple[Team, Plan]:
    """Lock the team row, bring its grants up to date and return it with its plan."""
    team = teams.get_team_for_update(conn, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} not found", teamId=team_id)
    plan = plans.get_plan(conn, team.plan_id)
    if plan is None:
        raise NotFound(f"Plan {team.plan_id} not found", planId=team.plan_id)
    if needs_rollover(team, now):
        roll_forward(conn, team, plan, now)
        team = teams.get_team(conn, team_id) or team
    for reservation_id in reservations.expired_open(conn, team_id, now):
        reservations.close(conn, team_id, reservation_id, "expired", now)
    return team, plan
