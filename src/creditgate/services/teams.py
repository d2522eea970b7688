"""Teams: create, list, read, suspend, change plan."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection

from creditgate.domain.errors import InvalidInput, LedgerError, NotFound
from creditgate.domain.ids import is_id, new_id
from creditgate.domain.instants import MS_PER_DAY, Instant
from creditgate.domain.plans import DEFAULT_PLAN_ID
from creditgate.domain.teams import Team
from creditgate.domain.text import refuse_nul
from creditgate.services import alerts, pages
from creditgate.services.ledger import ChangePlan, roll_forward
from creditgate.services.ledger import apply as ledger_apply
from creditgate.services.pages import Page
from creditgate.storage import plan_rows as plans
from creditgate.storage import team_rows as teams
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

MAX_NAME = 200
# How far from now an anchor may be. Back: a year of missed periods is granted (and expired) at
# creation, so backfilled usage finds its period's credits; further back would write a grant per
# month since then inside one transaction. An older billing date is given by its latest
# occurrence (same day of month and time of day), which yields the same periods from now on.
MAX_ANCHOR_AHEAD_MS = 366 * MS_PER_DAY
MAX_ANCHOR_BACK_MS = 366 * MS_PER_DAY


def _check_name(name: str) -> None:
    if not 1 <= len(name.strip()) <= MAX_NAME:
        raise InvalidInput(f"name must be 1 to {MAX_NAME} characters", field="name")
    refuse_nul(name, "name")
    if is_id(name.strip()):
        raise InvalidInput(
            "name must not have the form of a team id: a team is named by its id or its name",
            field="name",
        )


def _refuse_taken(conn: Connection, name: str, team_id: str | None = None) -> None:
    """A name is one team's: another team of this name is a Conflict (409)."""
    other = teams.get_team_by_name(conn, name)
    if other is not None and other.id != team_id:
        raise teams.name_taken(name)


def create_team(
    db: Database,
    name: str,
    now: Instant,
    plan_id: str = DEFAULT_PLAN_ID,
    anchor: Instant | None = None,
    allow_overage: bool = False,
) -> Team:
    _check_name(name)
    if anchor is not None and anchor > now + MAX_ANCHOR_AHEAD_MS:
        raise InvalidInput("anchor must not be more than a year ahead", field="anchor")
    if anchor is not None and anchor < now - MAX_ANCHOR_BACK_MS:
        raise InvalidInput("anchor must not be more than a year in the past", field="anchor")
    start = now if anchor is None else anchor
    team = Team(
        id=new_id(now),
        name=name.strip(),
        plan_id=plan_id,
        anchor=start,
        suspended=False,
        allow_overage=allow_overage,
        created_at=now,
        granted_through=None,
        next_rollover=start,
        last_charge_at=None,
    )
    with db.write() as conn:
        if plans.get_plan(conn, plan_id) is None:
            raise NotFound(f"Plan {plan_id} not found", planId=plan_id)
        _refuse_taken(conn, team.name)
        teams.insert_team(conn, team)
        alerts.default_rules(conn, team.id, now)
        roll_forward(Tx.of(conn), team.id, now)  # grants the first period's plan credits
        stored = teams.get_team(conn, team.id)
    assert stored is not None
    return stored


def refuse_taken_name(db: Database, name: str) -> None:
    """A Conflict (409) if another team has this name (as create_team would refuse it)."""
    with db.read() as conn:
        _refuse_taken(conn, name.strip())


def get_team(db: Database, team: str) -> Team:
    """The team of this id or, failing that, of this name (names are unique)."""
    with db.read() as conn:
        found = teams.find_team(conn, team)
    if found is None:
        raise NotFound(f"Team {team} not found", teamId=team)
    return found


def named(db: Database, name: str) -> list[Team]:
    """The team of this name, or none (names are unique)."""
    with db.read() as conn:
        found = teams.get_team_by_name(conn, name)
    return [] if found is None else [found]


def list_teams(db: Database) -> list[Team]:
    with db.read() as conn:
        return teams.list_teams(conn)


def page_teams(
    db: Database, limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Team]:
    """Teams in creation order, `limit` at a time from `cursor`."""
    pages.check_limit(limit)
    after = None if cursor is None else str(pages.decode_cursor("teams", cursor, str)[0])
    with db.read() as conn:
        found = teams.list_teams(conn, after, limit + 1)
    return pages.page(found, limit, lambda t: pages.encode_cursor("teams", t.id))


def update_team(
    db: Database,
    team_id: str,
    now: Instant,
    *,
    suspended: bool | None = None,
    allow_overage: bool | None = None,
    plan_id: str | None = None,
    name: str | None = None,
    plan_now: bool = False,
) -> Team:
    """Change a team. A new plan's limits apply at once and its credits from the next billing
    period on; with `plan_now`, a plan with more credits also raises the current period's to
    its own (an entry of the difference). Nothing given is refused, not a silent no-op."""
    if (suspended, allow_overage, plan_id, name) == (None, None, None, None):
        raise InvalidInput("nothing to update: no field of the team was given")
    if plan_now and plan_id is None:
        raise InvalidInput("now applies to a plan change: give the plan too", field="now")
    if name is not None:
        _check_name(name)
    with db.write() as conn:
        tx = Tx.of(conn)
        team, _ = roll_forward(tx, team_id, now)
        if name is not None:
            _refuse_taken(conn, name.strip(), team_id)
        plan = None if plan_id is None else plans.get_plan(conn, plan_id)
        if plan_id is not None and plan is None:
            raise NotFound(f"Plan {plan_id} not found", planId=plan_id)
        if plan is not None and plan.id != team.plan_id:
            (changed_plan,) = ledger_apply(
                tx, team_id, [ChangePlan(team_id, plan, now, at_once=plan_now)]
            )
            if isinstance(changed_plan, LedgerError):
                raise changed_plan
        changed = replace(
            team,
            suspended=team.suspended if suspended is None else suspended,
            allow_overage=team.allow_overage if allow_overage is None else allow_overage,
            plan_id=plan_id or team.plan_id,
            name=team.name if name is None else name.strip(),
        )
        teams.update_team(
            conn,
            team_id,
            suspended=changed.suspended,
            allow_overage=changed.allow_overage,
            name=changed.name,
        )
        stored = teams.get_team(conn, team_id)
    assert stored is not None
    return stored
