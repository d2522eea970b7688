"""Reads for the account routes: rollups and recent activity, never a scan of all entries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, or_, select, union_all

from creditgate.domain.instants import MS_PER_DAY, Instant
from creditgate.storage.database import Database
from creditgate.storage.tables import (
    entries,
    reservations,
    usage_by_hour,
    usage_by_key,
    usage_by_key_day,
    usage_by_period,
)


def first_usage_period(conn: Connection, team_id: str) -> Instant | None:
    query = select(func.min(usage_by_period.c.period_start_ms)).where(
        usage_by_period.c.team_id == team_id
    )
    value = conn.execute(query).scalar_one()
    return None if value is None else int(value)


def usage_per_period(conn: Connection, team_id: str) -> dict[Instant, int]:
    query = select(usage_by_period.c.period_start_ms, usage_by_period.c.credits).where(
        usage_by_period.c.team_id == team_id
    )
    return {int(r.period_start_ms): int(r.credits) for r in conn.execute(query)}


def usage_per_key(conn: Connection, team_id: str) -> list[tuple[Instant, str, int]]:
    """(period start, key id, credits) for every period and key with usage."""
    query = select(
        usage_by_key.c.period_start_ms, usage_by_key.c.key_id, usage_by_key.c.credits
    ).where(usage_by_key.c.team_id == team_id)
    return [(int(r.period_start_ms), r.key_id, int(r.credits)) for r in conn.execute(query)]


def usage_per_hour(
    conn: Connection, team_id: str, start: Instant, end: Instant
) -> dict[Instant, int]:
    query = select(usage_by_hour.c.hour_ms, usage_by_hour.c.credits).where(
        usage_by_hour.c.team_id == team_id,
        usage_by_hour.c.hour_ms >= start,
        usage_by_hour.c.hour_ms < end,
    )
    return {int(r.hour_ms): int(r.credits) for r in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class KeyDay:
    key_id: str | None
    day: Instant  # the UTC day's start
    credits: int
    last_at: Instant  # the day's last charge of this key


def usage_per_key_day(
    conn: Connection, team_id: str, period_start: Instant, since: Instant, until: Instant
) -> list[KeyDay]:
    """Credits charged per key and UTC day, for the charges of the billing period starting at
    `period_start` on the days in [since, until): the dashboard's daily chart, from the
    per-key-per-day rollup (a row per key and day, whatever the number of charges); the same
    charges as usage_by_key for that period, so the per-key sums agree with it."""
    t = usage_by_key_day
    query = select(t.c.key_id, t.c.day_ms, t.c.credits, t.c.last_ms).where(
        t.c.team_id == team_id,
        t.c.period_start_ms == period_start,
        t.c.day_ms >= since - since % MS_PER_DAY,
        t.c.day_ms < until,
    )
    return [
        KeyDay(r.key_id, int(r.day_ms), int(r.credits), int(r.last_ms)) for r in conn.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class ActivityRow:
    id: str
    endpoint: str
    api_version: str | None
    occurred_at: Instant
    target: str | None


def recent_activity(
    conn: Connection,
    team_id: str,
    since: Instant,
    endpoint: str | None,
    before: tuple[Instant, str] | None,
    limit: int,
) -> list[ActivityRow]:
    """The team's jobs, newest first: reservations, and charges made outside any reservation."""
    charges = select(
        entries.c.movement_id.label("id"),
        entries.c.endpoint,
        entries.c.api_version,
        entries.c.occurred_ms.label("at"),
        entries.c.target,
    ).where(
        entries.c.team_id == team_id,
        entries.c.kind == "charge",
        entries.c.line == 0,  # a charge movement lists its charge lines first
        entries.c.reservation_id.is_(None),
        entries.c.occurred_ms >= since,
        entries.c.endpoint.is_not(None),
        *([] if endpoint is None else [entries.c.endpoint == endpoint]),
    )
    holds = select(
        reservations.c.id,
        reservations.c.endpoint,
        reservations.c.api_version,
        reservations.c.created_ms.label("at"),
        reservations.c.target,
    ).where(
        reservations.c.team_id == team_id,
        reservations.c.created_ms >= since,
        reservations.c.endpoint.is_not(None),
        *([] if endpoint is None else [reservations.c.endpoint == endpoint]),
    )
    jobs = union_all(charges, holds).subquery()
    query = select(jobs)
    if before is not None:
        at, job_id = before
        query = query.where(or_(jobs.c.at < at, and_(jobs.c.at == at, jobs.c.id < job_id)))
    query = query.order_by(jobs.c.at.desc(), jobs.c.id.desc()).limit(limit)
    return [
        ActivityRow(r.id, r.endpoint, r.api_version, int(r.at), r.target)
        for r in conn.execute(query)
    ]


_USAGE_BY_KEY_SQL = """
SELECT u.period_start_ms, k.name, u.credits FROM usage_by_key u
JOIN api_keys k ON k.id = u.key_id WHERE u.team_id = :team
"""
_USAGE_BY_PERIOD_SQL = """
SELECT period_start_ms, NULL, credits FROM usage_by_period WHERE team_id = :team
"""


def usage_rows(db: Database, team_id: str, by_key: bool) -> list[tuple[Instant, str | None, int]]:
    """(period start, key name or None, credits) from the rollups, in one statement."""
    sql = _USAGE_BY_KEY_SQL if by_key else _USAGE_BY_PERIOD_SQL
    return [(int(r[0]), r[1], int(r[2])) for r in db.fetch(sql, {"team": team_id})]


_PERIOD_SIGNATURES_SQL = """
SELECT p.period_start_ms, p.credits,
       (SELECT COUNT(*) FROM usage_by_key u
         WHERE u.team_id = p.team_id AND u.period_start_ms = p.period_start_ms)
FROM usage_by_period p WHERE p.team_id = :team
"""
_KEY_USAGE_SINCE_SQL = """
SELECT u.period_start_ms, k.name, u.credits FROM usage_by_key u
JOIN api_keys k ON k.id = u.key_id WHERE u.team_id = :team AND u.period_start_ms >= :since
"""


def period_signatures(db: Database, team_id: str) -> dict[Instant, tuple[int, int]]:
    """Per period with usage: (credits, rows of usage_by_key), in one statement of one row per
    period. Charges are never negative and rollups only add, so while both numbers stay the
    same, the period's rows in usage_by_key are the same rows with the same credits."""
    rows = db.fetch(_PERIOD_SIGNATURES_SQL, {"team": team_id})
    return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}


def key_usage_since(db: Database, team_id: str, since: Instant) -> list[tuple[Instant, str, int]]:
    """(period start, key name, credits) of every period starting at or after `since`."""
    rows = db.fetch(_KEY_USAGE_SINCE_SQL, {"team": team_id, "since": since})
    return [(int(r[0]), r[1], int(r[2])) for r in rows]
