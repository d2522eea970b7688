"""Grants, entries (the append-only history), idempotency records and usage rollups."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, insert, or_, select, update

from creditgate.domain.grants import GrantState
from creditgate.domain.instants import Instant
from creditgate.storage.rows import grant_from_row
from creditgate.storage.tables import (
    entries,
    grants,
    idempotency,
    usage_by_hour,
    usage_by_key,
    usage_by_period,
)
from creditgate.storage.upsert import add_to_counters


@dataclass(frozen=True, slots=True)
class NewGrant:
    id: str
    team_id: str
    kind: str
    amount: int
    starts_at: Instant
    expires_at: Instant | None
    period_start: Instant | None
    note: str | None
    created_at: Instant


@dataclass(frozen=True, slots=True)
class EntryLine:
    """One line of a movement: the credits it moves on one grant (or none)."""

    kind: str
    amount: int  # signed
    grant_id: str | None = None
    key_id: str | None = None
    period_start: Instant | None = None
    endpoint: str | None = None
    api_version: str | None = None
    job_id: str | None = None
    target: str | None = None
    note: str | None = None
    reservation_id: str | None = None


# --- grants ---------------------------------------------------------------------------------


def insert_grant(conn: Connection, grant: NewGrant) -> None:
    conn.execute(
        insert(grants).values(
            team_id=grant.team_id,
            id=grant.id,
            kind=grant.kind,
            amount=grant.amount,
            remaining=grant.amount,
            expired_amount=0,
            starts_ms=grant.starts_at,
            expires_ms=grant.expires_at,
            period_start_ms=grant.period_start,
            note=grant.note,
            created_ms=grant.created_at,
        )
    )


def grants_active_at(conn: Connection, team_id: str, at: Instant) -> list[GrantState]:
    query = select(grants).where(
        grants.c.team_id == team_id,
        grants.c.starts_ms <= at,
        or_(grants.c.expires_ms.is_(None), grants.c.expires_ms > at),
    )
    return [grant_from_row(r) for r in conn.execute(query)]


def grants_to_expire(conn: Connection, team_id: str, now: Instant) -> list[GrantState]:
    query = select(grants).where(
        grants.c.team_id == team_id,
        grants.c.expires_ms <= now,
        grants.c.expired_ms.is_(None),
    )
    return [grant_from_row(r) for r in conn.execute(query)]


def next_expiry(conn: Connection, team_id: str) -> Instant | None:
    query = select(func.min(grants.c.expires_ms)).where(
        grants.c.team_id == team_id, grants.c.expired_ms.is_(None)
    )
    value = conn.execute(query).scalar_one()
    return None if value is None else int(value)


def move_grant(
    conn: Connection, team_id: str, grant_id: str, remaining_delta: int, expired_delta: int = 0
) -> None:
    conn.execute(
        update(grants)
        .where(grants.c.team_id == team_id, grants.c.id == grant_id)
        .values(
            remaining=grants.c.remaining + remaining_delta,
            expired_amount=grants.c.expired_amount + expired_delta,
        )
    )


def mark_expired(conn: Connection, team_id: str, grant_id: str, at: Instant) -> None:
    conn.execute(
        update(grants)
        .where(grants.c.team_id == team_id, grants.c.id == grant_id)
        .values(expired_ms=at)
    )


def live_balance(conn: Connection, team_id: str, now: Instant) -> int | None:
    """Sum of unexpired grants' remaining credits; None when the team never had a grant."""
    has_any = conn.execute(select(grants.c.id).where(grants.c.team_id == team_id).limit(1)).first()
    if has_any is None:
        return None
    query = select(func.coalesce(func.sum(grants.c.remaining), 0)).where(
        grants.c.team_id == team_id,
        grants.c.starts_ms <= now,
        or_(grants.c.expires_ms.is_(None), grants.c.expires_ms > now),
    )
    return int(conn.execute(query).scalar_one())


def plan_grant_amount(conn: Connection, team_id: str, period_start: Instant) -> int | None:
    query = select(grants.c.amount).where(
        grants.c.team_id == team_id,
        grants.c.kind == "plan",
        grants.c.period_start_ms == period_start,
    )
    value = conn.execute(query).scalar()
    return None if value is None else int(value)


# --- entries --------------------------------------------------------------------------------


def insert_movement(
    conn: Connection,
    team_id: str,
    movement_id: str,
    lines: list[EntryLine],
    occurred_at: Instant,
    recorded_at: Instant,
) -> None:
    conn.execute(
        insert(entries),
        [
            {
                "team_id": team_id,
                "movement_id": movement_id,
                "line": n,
                "kind": line.kind,
                "amount": line.amount,
                "grant_id": line.grant_id,
                "key_id": line.key_id,
                "period_start_ms": line.period_start,
                "endpoint": line.endpoint,
                "api_version": line.api_version,
                "job_id": line.job_id,
                "target": line.target,
                "note": line.note,
                "reservation_id": line.reservation_id,
                "occurred_ms": occurred_at,
                "recorded_ms": recorded_at,
            }
            for n, line in enumerate(lines)
        ],
    )


# --- idempotency ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    request_hash: str
    movement_id: str
    response: str


def get_idempotency(conn: Connection, team_id: str, key: str) -> IdempotencyRecord | None:
    row = conn.execute(
        select(idempotency).where(idempotency.c.team_id == team_id, idempotency.c.key == key)
    ).first()
    if row is None:
        return None
    return IdempotencyRecord(row.request_hash, row.movement_id, row.response)


def insert_idempotency(
    conn: Connection, team_id: str, key: str, record: IdempotencyRecord, at: Instant
) -> None:
    conn.execute(
        insert(idempotency).values(
            team_id=team_id,
            key=key,
            request_hash=record.request_hash,
            movement_id=record.movement_id,
            response=record.response,
            created_ms=at,
        )
    )


# --- rollups --------------------------------------------------------------------------------


@cache
def _key_usage() -> Select[Any]:
    return select(usage_by_key.c.credits).where(
        usage_by_key.c.team_id == bindparam("team"),
        usage_by_key.c.period_start_ms == bindparam("period"),
        usage_by_key.c.key_id == bindparam("key"),
    )


def key_usage(conn: Connection, team_id: str, key_id: str, period_start: Instant) -> int:
    params = {"team": team_id, "period": period_start, "key": key_id}
    return int(conn.execute(_key_usage(), params).scalar() or 0)


# --- bulk forms, for a whole team's batch in one transaction -------------------------------


@cache
def _team_grants() -> Select[Any]:
    return select(grants).where(grants.c.team_id == bindparam("team")).order_by(grants.c.starts_ms)


def all_grants(conn: Connection, team_id: str) -> list[GrantState]:
    return [grant_from_row(r) for r in conn.execute(_team_grants(), {"team": team_id})]


def move_grants(conn: Connection, team_id: str, deltas: dict[str, tuple[int, int]]) -> None:
    """Apply (remaining, expired_amount) deltas to many grants in one executemany."""
    if not deltas:
        return
    statement = (
        update(grants)
        .where(grants.c.team_id == bindparam("t"), grants.c.id == bindparam("g"))
        .values(
            remaining=grants.c.remaining + bindparam("dr"),
            expired_amount=grants.c.expired_amount + bindparam("de"),
        )
    )
    conn.execute(
        statement,
        [{"t": team_id, "g": g, "dr": dr, "de": de} for g, (dr, de) in deltas.items()],
    )


def insert_entry_rows(conn: Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(insert(entries), rows)


def idempotency_many(
    conn: Connection, team_id: str, keys: list[str]
) -> dict[str, IdempotencyRecord]:
    found: dict[str, IdempotencyRecord] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        query = select(idempotency).where(
            idempotency.c.team_id == team_id, idempotency.c.key.in_(chunk)
        )
        for row in conn.execute(query):
            found[row.key] = IdempotencyRecord(row.request_hash, row.movement_id, row.response)
    return found


def insert_idempotency_rows(conn: Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(insert(idempotency), rows)


def add_usage_many(
    conn: Connection,
    team_id: str,
    per_period: dict[Instant, int],
    per_key: dict[tuple[Instant, str], int],
    per_hour: dict[Instant, int],
) -> None:
    add_to_counters(
        conn,
        usage_by_period,
        ("team_id", "period_start_ms"),
        [{"team_id": team_id, "period_start_ms": p, "credits": c} for p, c in per_period.items()],
    )
    add_to_counters(
        conn,
        usage_by_key,
        ("team_id", "period_start_ms", "key_id"),
        [
            {"team_id": team_id, "period_start_ms": p, "key_id": k, "credits": c}
            for (p, k), c in per_key.items()
        ],
    )
    add_to_counters(
        conn,
        usage_by_hour,
        ("team_id", "hour_ms"),
        [{"team_id": team_id, "hour_ms": h, "credits": c} for h, c in per_hour.items()],
    )
