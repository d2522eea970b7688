"""Team rows."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from creditgate.domain.errors import Conflict, NotFound
from creditgate.domain.teams import Team
from creditgate.storage.rows import team_from_row
from creditgate.storage.tables import teams


def insert_team(conn: Connection, team: Team) -> None:
    """Insert a team; its name taken by another (a race the caller's check lost) is a
    Conflict, as the check would have said."""
    try:
        _insert_team(conn, team)
    except IntegrityError as exc:
        if "name" not in str(exc.orig):
            raise
        raise name_taken(team.name) from None


def name_taken(name: str) -> Conflict:
    return Conflict(
        f"A team named {name} exists already: team names are unique, choose another",
        field="name",
    )


def _insert_team(conn: Connection, team: Team) -> None:
    conn.execute(
        insert(teams).values(
            id=team.id,
            name=team.name,
            plan_id=team.plan_id,
            anchor_ms=team.anchor,
            suspended=team.suspended,
            allow_overage=team.allow_overage,
            created_ms=team.created_at,
            granted_through_ms=team.granted_through,
            next_rollover_ms=team.next_rollover,
            last_charge_ms=team.last_charge_at,
        )
    )


@cache
def _by_id(for_update: bool) -> Select[Any]:
    query = select(teams).where(teams.c.id == bindparam("id"))
    return query.with_for_update() if for_update else query


def get_team(conn: Connection, team_id: str) -> Team | None:
    row = conn.execute(_by_id(False), {"id": team_id}).first()
    return None if row is None else team_from_row(row)


def get_team_by_name(conn: Connection, name: str) -> Team | None:
    """The team of this name (names are unique: migration 0017)."""
    row = conn.execute(select(teams).where(teams.c.name == name)).first()
    return None if row is None else team_from_row(row)


def find_team(conn: Connection, team: str) -> Team | None:
    """The team of this id or, failing that, of this name."""
    return get_team(conn, team) or get_team_by_name(conn, team)


def get_team_for_update(conn: Connection, team_id: str) -> Team | None:
    """Lock the team's row: every credit-moving write of one team goes through this lock."""
    row = conn.execute(_by_id(True), {"id": team_id}).first()
    return None if row is None else team_from_row(row)


def require_team(conn: Connection, team_id: str) -> Team:
    """The team, or NotFound: what every operation naming a team by id checks first."""
    team = get_team(conn, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} not found", teamId=team_id)
    return team


def list_teams(conn: Connection, after: str | None = None, limit: int | None = None) -> list[Team]:
    """Teams in id order (their creation order: ids are UUIDv7); `after`: the id a page ended
    at."""
    query = select(teams).order_by(teams.c.id).limit(limit)
    if after is not None:
        query = query.where(teams.c.id > after)
    return [team_from_row(r) for r in conn.execute(query)]


def update_team(conn: Connection, team_id: str, **values: Any) -> None:
    """Update columns by their storage names (e.g. suspended=True, next_rollover_ms=...)."""
    conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
