"""Balance reads outside the write path (which reads and writes in storage/book.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, or_, select

from creditgate.domain.instants import Instant
from creditgate.storage.tables import grants


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


@dataclass(frozen=True, slots=True)
class GrantRow:
    id: str
    kind: str
    amount: int
    remaining: int
    expired_amount: int
    starts_at: Instant
    expires_at: Instant | None
    note: str | None


MAX_GRANTS_LISTED = 100


def recent_grants(conn: Connection, team_id: str, limit: int = MAX_GRANTS_LISTED) -> list[GrantRow]:
    """A team's grants, newest first (a year of plan periods plus its packs fits in the limit)."""
    query = (
        select(grants)
        .where(grants.c.team_id == team_id)
        .order_by(grants.c.starts_ms.desc(), grants.c.id.desc())
        .limit(limit)
    )
    return [
        GrantRow(
            r.id,
            r.kind,
            int(r.amount),
            int(r.remaining),
            int(r.expired_amount),
            int(r.starts_ms),
            None if r.expires_ms is None else int(r.expires_ms),
            r.note,
        )
        for r in conn.execute(query)
    ]
