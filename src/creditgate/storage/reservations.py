"""Reservation rows: open holds, their totals, and state changes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Update,
    bindparam,
    func,
    insert,
    select,
    update,
)

from creditgate.domain.instants import Instant
from creditgate.storage.tables import reservations

OPEN = "open"


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    team_id: str
    key_id: str
    amount: int
    settled: int
    status: str
    endpoint: str | None
    api_version: str | None
    job_id: str | None
    target: str | None
    created_at: Instant
    expires_at: Instant
    closed_at: Instant | None
    owner: str | None = None  # the gateway process whose request holds it

    @property
    def holding(self) -> int:
        """Credits still set aside: what was reserved and not yet charged."""
        return max(self.amount - self.settled, 0) if self.status == OPEN else 0


def _from_row(row: object) -> Reservation:
    m = row._mapping  # type: ignore[attr-defined]
    return Reservation(
        id=m["id"],
        team_id=m["team_id"],
        key_id=m["key_id"],
        amount=m["amount"],
        settled=m["settled"],
        status=m["status"],
        endpoint=m["endpoint"],
        api_version=m["api_version"],
        job_id=m["job_id"],
        target=m["target"],
        created_at=m["created_ms"],
        expires_at=m["expires_ms"],
        closed_at=m["closed_ms"],
        owner=m["owner"],
    )


def insert_reservation(conn: Connection, r: Reservation) -> None:
    conn.execute(
        insert(reservations).values(
            team_id=r.team_id,
            id=r.id,
            key_id=r.key_id,
            amount=r.amount,
            settled=r.settled,
            status=r.status,
            endpoint=r.endpoint,
            api_version=r.api_version,
            job_id=r.job_id,
            target=r.target,
            created_ms=r.created_at,
            expires_ms=r.expires_at,
            closed_ms=r.closed_at,
            owner=r.owner,
        )
    )


@cache
def _by_id() -> Select[Any]:
    return select(reservations).where(reservations.c.id == bindparam("id"))


def get_reservation(conn: Connection, reservation_id: str) -> Reservation | None:
    row = conn.execute(_by_id(), {"id": reservation_id}).first()
    return None if row is None else _from_row(row)


def _open_at() -> list[ColumnElement[bool]]:
    """Open and unexpired at the bound `now` (statements are built once, bound per call)."""
    return [reservations.c.status == OPEN, reservations.c.expires_ms > bindparam("now")]


@cache
def _team_hold() -> Select[Any]:
    held = func.coalesce(func.sum(reservations.c.amount - reservations.c.settled), 0)
    return select(held).where(
        reservations.c.team_id == bindparam("team"),
        reservations.c.amount > reservations.c.settled,
        *_open_at(),
    )


def team_hold(conn: Connection, team_id: str, now: Instant) -> int:
    """Credits held by the team's open, unexpired reservations."""
    return int(conn.execute(_team_hold(), {"team": team_id, "now": now}).scalar_one())


@cache
def _count_open() -> Select[Any]:
    return (
        select(func.count())
        .select_from(reservations)
        .where(reservations.c.team_id == bindparam("team"), *_open_at())
    )


def count_open(conn: Connection, team_id: str, now: Instant) -> int:
    return int(conn.execute(_count_open(), {"team": team_id, "now": now}).scalar_one())


@cache
def _add_settled() -> Update:
    return (
        update(reservations)
        .where(reservations.c.team_id == bindparam("team"), reservations.c.id == bindparam("rid"))
        .values(settled=reservations.c.settled + bindparam("credits"))
    )


def add_settled(conn: Connection, team_id: str, reservation_id: str, credits: int) -> None:
    conn.execute(_add_settled(), {"team": team_id, "rid": reservation_id, "credits": credits})


@cache
def _close() -> Update:
    return (
        update(reservations)
        .where(reservations.c.team_id == bindparam("team"), reservations.c.id == bindparam("rid"))
        .values(
            status=bindparam("status"),
            closed_ms=bindparam("at"),
            job_id=func.coalesce(reservations.c.job_id, bindparam("job")),
        )
    )


def close(
    conn: Connection,
    team_id: str,
    reservation_id: str,
    status: str,
    at: Instant,
    job_id: str | None = None,
) -> None:
    """Close it; `job_id` names the work it paid for, if nothing named it yet."""
    conn.execute(
        _close(),
        {"team": team_id, "rid": reservation_id, "status": status, "at": at, "job": job_id},
    )


@cache
def _expired_open() -> Select[Any]:
    return select(reservations.c.id).where(
        reservations.c.team_id == bindparam("team"),
        reservations.c.status == OPEN,
        reservations.c.expires_ms <= bindparam("now"),
    )


def expired_open(conn: Connection, team_id: str, now: Instant) -> list[str]:
    return [r.id for r in conn.execute(_expired_open(), {"team": team_id, "now": now})]


def teams_with_expired(conn: Connection, now: Instant, limit: int) -> list[str]:
    query = (
        select(reservations.c.team_id)
        .where(reservations.c.status == OPEN, reservations.c.expires_ms <= now)
        .distinct()
        .limit(limit)
    )
    return [r.team_id for r in conn.execute(query)]


@cache
def _key_holds() -> Select[Any]:
    held = func.sum(reservations.c.amount - reservations.c.settled)
    return (
        select(reservations.c.key_id, held)
        .where(
            reservations.c.team_id == bindparam("team"),
            reservations.c.amount > reservations.c.settled,
            *_open_at(),
        )
        .group_by(reservations.c.key_id)
    )


def key_holds(conn: Connection, team_id: str, now: Instant) -> dict[str, int]:
    """Credits held per key by the team's open, unexpired reservations."""
    rows = conn.execute(_key_holds(), {"team": team_id, "now": now})
    return {row[0]: int(row[1]) for row in rows}


def hand_over(conn: Connection, team_id: str, reservation_id: str, job_id: str) -> None:
    """Name the upstream job a reservation pays for, once the upstream has said it; the job,
    followed by any gateway process, owns the hold from now on."""
    conn.execute(
        update(reservations)
        .where(reservations.c.team_id == team_id, reservations.c.id == reservation_id)
        .values(job_id=job_id, owner=None)
    )


def set_amount(conn: Connection, team_id: str, reservation_id: str, amount: int) -> None:
    conn.execute(
        update(reservations)
        .where(reservations.c.team_id == team_id, reservations.c.id == reservation_id)
        .values(amount=amount)
    )


def holds_job(conn: Connection, team_id: str, job_id: str) -> bool:
    """Did one of the team's reservations pay for this upstream job (or scrape) id?"""
    query = select(reservations.c.id).where(
        reservations.c.team_id == team_id, reservations.c.job_id == job_id
    )
    return conn.execute(query.limit(1)).first() is not None


def orphaned(conn: Connection, live: list[str], limit: int) -> list[tuple[str, str]]:
    """(team, reservation) of open holds owned by a process not in `live`."""
    query = (
        select(reservations.c.team_id, reservations.c.id)
        .where(
            reservations.c.status == OPEN,
            reservations.c.owner.is_not(None),
            reservations.c.owner.not_in(live),
        )
        .limit(limit)
    )
    return [(r.team_id, r.id) for r in conn.execute(query)]
