"""Rows of the running totals unknown upstream routes report (see services/reported.py)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from creditgate.domain.instants import Instant
from creditgate.storage.tables import reported_totals
from creditgate.storage.upsert import upsert_row


def charged_total(conn: Connection, team_id: str, path: str) -> int:
    query = select(reported_totals.c.credits).where(
        reported_totals.c.team_id == team_id, reported_totals.c.path == path
    )
    return int(conn.execute(query).scalar() or 0)


def record_total(conn: Connection, team_id: str, path: str, credits: int, at: Instant) -> None:
    upsert_row(
        conn,
        reported_totals,
        ("team_id", "path"),
        {"team_id": team_id, "path": path, "credits": credits, "updated_ms": at},
    )
