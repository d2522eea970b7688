"""Rows of the gateway processes alive: who they are and when they last beat."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from creditgate.domain.instants import Instant
from creditgate.storage.tables import processes


def insert_process(conn: Connection, process_id: str, pid: int, hostname: str, at: Instant) -> None:
    conn.execute(
        insert(processes).values(
            id=process_id, pid=pid, hostname=hostname, started_ms=at, heartbeat_ms=at
        )
    )


def beat(conn: Connection, process_id: str, at: Instant) -> bool:
    """Record a heartbeat; False if the row is gone (another process declared this one dead)."""
    result = conn.execute(
        update(processes).where(processes.c.id == process_id).values(heartbeat_ms=at)
    )
    return bool(result.rowcount)


def beating(conn: Connection, since: Instant) -> list[tuple[str, int, str]]:
    """(id, pid, hostname) of the processes that beat since `since`."""
    query = select(processes.c.id, processes.c.pid, processes.c.hostname).where(
        processes.c.heartbeat_ms >= since
    )
    return [(r.id, r.pid, r.hostname) for r in conn.execute(query)]


def forget_dead(conn: Connection, before: Instant) -> int:
    result = conn.execute(delete(processes).where(processes.c.heartbeat_ms < before))
    return int(result.rowcount)


def remove(conn: Connection, process_id: str) -> None:
    conn.execute(delete(processes).where(processes.c.id == process_id))
