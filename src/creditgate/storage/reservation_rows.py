"""Reservation rows: open holds, their totals, and state changes."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    func,
    select,
    update,
)

from creditgate.domain.instants import Instant
from creditgate.domain.reservations import HoldStatus, Reservation
from creditgate.storage.tables import entries, jobs, reservations

OPEN = HoldStatus.OPEN.value


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
        slots=m["slots"],
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
def _open_totals() -> Select[Any]:
    held = func.coalesce(func.sum(reservations.c.amount - reservations.c.settled), 0)
    slots = func.coalesce(func.sum(reservations.c.slots), 0)
    return select(func.count(), held, slots).select_from(reservations).where(*_open_at())


def open_totals(conn: Connection, now: Instant) -> tuple[int, int, int]:
    """Every team's open, unexpired reservations: how many, the credits they still keep
    aside (what is held less what was settled), and their page slots. One aggregate over the
    (status, expires_ms) index: it reads the open rows only, however many closed ones the
    table keeps."""
    count, held, slots = conn.execute(_open_totals(), {"now": now}).one()
    return int(count), int(held), int(slots)


@cache
def _slots_in_use() -> Select[Any]:
    return select(func.coalesce(func.sum(reservations.c.slots), 0)).where(
        reservations.c.team_id == bindparam("team"), *_open_at()
    )


def slots_in_use(conn: Connection, team_id: str, now: Instant) -> int:
    """The slots of the team's open, unexpired holds: pages it may have in flight."""
    return int(conn.execute(_slots_in_use(), {"team": team_id, "now": now}).scalar_one())


def teams_with_expired(conn: Connection, now: Instant, limit: int) -> list[str]:
    query = (
        select(reservations.c.team_id)
        .where(reservations.c.status == OPEN, reservations.c.expires_ms <= now)
        .distinct()
        .limit(limit)
    )
    return [r.team_id for r in conn.execute(query)]


def hand_over(conn: Connection, team_id: str, reservation_id: str, job_id: str) -> None:
    """Name the upstream job a reservation pays for, once the upstream has said it; the job,
    followed by any gateway process, owns the hold from now on."""
    conn.execute(
        update(reservations)
        .where(reservations.c.team_id == team_id, reservations.c.id == reservation_id)
        .values(job_id=job_id, owner=None)
    )


def holds_job(conn: Connection, team_id: str, job_id: str) -> bool:
    """Did one of the team's reservations pay for this upstream job (or scrape) id, or one of
    its charges (a scrape drawn from a credit lease names its id on its charge only)?"""
    query = select(reservations.c.id).where(
        reservations.c.team_id == team_id, reservations.c.job_id == job_id
    )
    if conn.execute(query.limit(1)).first() is not None:
        return True
    charged = select(entries.c.line).where(entries.c.team_id == team_id, entries.c.job_id == job_id)
    return conn.execute(charged.limit(1)).first() is not None


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


MAX_OPEN_LISTED = 200


def open_holds(
    conn: Connection, team_id: str, now: Instant
) -> list[tuple[Reservation, str | None]]:
    """The team's open, unexpired reservations (what queue-status counts), oldest first, each
    with the status of the upstream job it pays for (None: not a followed job); at most
    MAX_OPEN_LISTED (a plan's concurrency is far below it)."""
    query = (
        select(reservations, jobs.c.status.label("job_status"))
        .select_from(
            reservations.outerjoin(
                jobs,
                (jobs.c.team_id == reservations.c.team_id)
                & (jobs.c.reservation_id == reservations.c.id),
            )
        )
        .where(
            reservations.c.team_id == team_id,
            reservations.c.status == OPEN,
            reservations.c.expires_ms > now,
        )
        .order_by(reservations.c.created_ms, reservations.c.id)
        .limit(MAX_OPEN_LISTED)
    )
    return [(_from_row(r), r.job_status) for r in conn.execute(query)]
