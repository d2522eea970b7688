"""Webhook endpoints, events and the delivery outbox.

The outbox rows are written by the write path (storage/book.py) in the transaction of the event
that caused them; this module lets the dispatcher claim, record and list them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from creditgate.domain.instants import Instant
from creditgate.storage.tables import events, webhook_deliveries, webhook_endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    team_id: str | None  # None: every team's events
    url: str
    secret: str
    previous_secret: str | None
    previous_until: Instant | None
    event_types: tuple[str, ...] | None  # None: all
    created_at: Instant
    disabled_at: Instant | None


def _endpoint(r: Any) -> Endpoint:
    types = None if r.event_types is None else tuple(r.event_types.split(","))
    return Endpoint(
        r.id,
        r.team_id,
        r.url,
        r.secret,
        r.previous_secret,
        r.previous_until_ms,
        types,
        r.created_ms,
        r.disabled_ms,
    )


def insert_endpoint(conn: Connection, e: Endpoint) -> None:
    conn.execute(
        insert(webhook_endpoints).values(
            id=e.id,
            team_id=e.team_id,
            url=e.url,
            secret=e.secret,
            event_types=None if e.event_types is None else ",".join(e.event_types),
            created_ms=e.created_at,
        )
    )


def get_endpoint(conn: Connection, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    ).first()
    return None if row is None else _endpoint(row)


def list_endpoints(conn: Connection, team_id: str | None = None) -> list[Endpoint]:
    query = select(webhook_endpoints).order_by(webhook_endpoints.c.created_ms)
    if team_id is not None:
        query = query.where(webhook_endpoints.c.team_id == team_id)
    return [_endpoint(r) for r in conn.execute(query)]


def rotate(conn: Connection, endpoint_id: str, secret: str, previous_until: Instant) -> None:
    conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            previous_secret=webhook_endpoints.c.secret,
            previous_until_ms=previous_until,
            secret=secret,
        )
    )


def disable(conn: Connection, endpoint_id: str, at: Instant) -> None:
    conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(disabled_ms=at)
    )


# --- deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    endpoint_id: str
    team_id: str
    event_seq: int
    status: str
    attempts: int
    next_attempt: Instant
    last_attempt: Instant | None
    last_status: int | None
    last_error: str | None
    delivered_at: Instant | None
    created_at: Instant
    event_id: str
    event_type: str
    payload: str


_DELIVERY = """
SELECT d.endpoint_id, d.team_id, d.event_seq, d.status, d.attempts, d.next_attempt_ms,
       d.last_attempt_ms, d.last_status, d.last_error, d.delivered_ms, d.created_ms,
       e.id, e.type, e.payload
FROM webhook_deliveries d JOIN events e ON e.team_id = d.team_id AND e.seq = d.event_seq"""

# Due, and first of its (endpoint, team) in line: a team's events reach an endpoint in order.
_DUE = (
    _DELIVERY
    + """
WHERE d.status = 'pending' AND d.next_attempt_ms <= :now
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                  WHERE p.endpoint_id = d.endpoint_id AND p.team_id = d.team_id
                    AND p.status = 'pending' AND p.event_seq < d.event_seq)
ORDER BY d.next_attempt_ms LIMIT :limit"""
)


def due(conn: Connection, now: Instant, limit: int) -> list[Delivery]:
    return [Delivery(*r) for r in conn.execute(text(_DUE), {"now": now, "limit": limit})]


def claim(conn: Connection, d: Delivery, until: Instant) -> bool:
    """Take a due delivery for this process until `until` (another process that read it due
    too finds it taken): True if this one took it."""
    result = conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == d.endpoint_id,
            webhook_deliveries.c.team_id == d.team_id,
            webhook_deliveries.c.event_seq == d.event_seq,
            webhook_deliveries.c.status == "pending",
            webhook_deliveries.c.next_attempt_ms == d.next_attempt,
        )
        .values(next_attempt_ms=until)
    )
    return bool(result.rowcount)


def record(
    conn: Connection,
    d: Delivery,
    *,
    status: str,
    at: Instant,
    next_attempt: Instant,
    code: int | None,
    error: str | None,
) -> None:
    conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.endpoint_id == d.endpoint_id,
            webhook_deliveries.c.team_id == d.team_id,
            webhook_deliveries.c.event_seq == d.event_seq,
        )
        .values(
            status=status,
            attempts=webhook_deliveries.c.attempts + 1,
            last_attempt_ms=at,
            next_attempt_ms=next_attempt,
            last_status=code,
            last_error=None if error is None else error[:500],
            delivered_ms=at if status == "delivered" else None,
        )
    )


def list_deliveries(
    conn: Connection,
    endpoint_id: str,
    limit: int = 100,
    before: tuple[int, str, int] | None = None,
) -> list[Delivery]:
    """The endpoint's deliveries, newest first (created, then team, then event number), from
    after `before`, the sort key where the previous page ended."""
    where = "WHERE d.endpoint_id = :e"
    params: dict[str, object] = {"e": endpoint_id, "limit": limit}
    if before is not None:
        where += (
            " AND (d.created_ms < :c OR (d.created_ms = :c AND (d.team_id < :t"
            " OR (d.team_id = :t AND d.event_seq < :s))))"
        )
        params.update(c=before[0], t=before[1], s=before[2])
    order = " ORDER BY d.created_ms DESC, d.team_id DESC, d.event_seq DESC LIMIT :limit"
    return [Delivery(*r) for r in conn.execute(text(_DELIVERY + " " + where + order), params)]


def backlog(conn: Connection) -> dict[str, int]:
    """Deliveries by status (pending is the backlog, dead the failures)."""
    query = select(webhook_deliveries.c.status, text("COUNT(*)")).group_by(
        webhook_deliveries.c.status
    )
    return {r[0]: int(r[1]) for r in conn.execute(query)}


def event(conn: Connection, team_id: str, seq: int) -> tuple[str, str, str] | None:
    row = conn.execute(
        select(events.c.id, events.c.type, events.c.payload).where(
            events.c.team_id == team_id, events.c.seq == seq
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])
