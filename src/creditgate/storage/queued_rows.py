"""Rows of the job starts waiting for a slot (services/queued.py): hand-written statements on
the ledger's transaction (storage/tx.py), so a start is stored in the write that holds its
credits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from creditgate.domain.instants import Instant
from creditgate.storage.tx import Tx


class State(StrEnum):
    QUEUED = "queued"  # accepted, holds its credits, waits for a slot
    STARTING = "starting"  # took its slots; a process is forwarding it (claimed_by, lease)
    STARTED = "started"  # the upstream started it: a followed job (jobs.id = this id)
    CANCELLED = "cancelled"  # cancelled before it started: never reached the upstream
    FAILED = "failed"  # refused upstream, refused here, or its start was abandoned


WAITING = (State.QUEUED, State.STARTING)


@dataclass(frozen=True, slots=True)
class QueuedStart:
    id: str
    team_id: str
    seq: int
    key_id: str
    reservation_id: str
    endpoint: str
    api_version: str
    method: str
    path: str
    body: str
    headers: str
    slots: int
    hold_step: int | None
    hold_ceiling: int | None
    page_price: int | None
    page_limit: int | None
    target: str | None
    state: State
    created_at: Instant
    updated_at: Instant
    claimed_by: str | None = None
    lease_until: Instant | None = None
    upstream_id: str | None = None
    error: str | None = None


_COLUMNS = (
    "id, team_id, seq, key_id, reservation_id, endpoint, api_version, method, path, body, "
    "headers, slots, hold_step, hold_ceiling, page_price, page_limit, target, state, "
    "created_ms, updated_ms, claimed_by, lease_ms, upstream_id, error"
)


def _of(row: Sequence[Any]) -> QueuedStart:
    values = list(row)
    values[17] = State(values[17])
    return QueuedStart(*values)


def insert(tx: Tx, q: QueuedStart) -> int:
    """Store a new start, last of its team's (its seq is taken under the team's lock, which
    the caller's ledger write holds). Its seq."""
    ((seq,),) = tx.rows(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM queued_starts WHERE team_id = :team",
        {"team": q.team_id},
    )
    params = {
        "id": q.id,
        "team": q.team_id,
        "seq": int(seq),
        "key": q.key_id,
        "res": q.reservation_id,
        "endpoint": q.endpoint,
        "version": q.api_version,
        "method": q.method,
        "path": q.path,
        "body": q.body,
        "headers": q.headers,
        "slots": q.slots,
        "step": q.hold_step,
        "ceiling": q.hold_ceiling,
        "price": q.page_price,
        "limit": q.page_limit,
        "target": q.target,
        "state": str(q.state),
        "now": q.created_at,
    }
    tx.run(
        f"INSERT INTO queued_starts ({_COLUMNS}) VALUES (:id, :team, :seq, :key, :res, "
        ":endpoint, :version, :method, :path, :body, :headers, :slots, :step, :ceiling, "
        ":price, :limit, :target, :state, :now, :now, NULL, NULL, NULL, NULL)",
        params,
    )
    return int(seq)


def get(tx: Tx, team_id: str, start_id: str) -> QueuedStart | None:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM queued_starts WHERE team_id = :team AND id = :id",
        {"team": team_id, "id": start_id},
    )
    return _of(rows[0]) if rows else None


def has_waiting(tx: Tx, team_id: str) -> bool:
    rows = tx.rows(
        "SELECT 1 FROM queued_starts WHERE state IN ('queued', 'starting') AND team_id = :team "
        "LIMIT 1",
        {"team": team_id},
    )
    return bool(rows)


def count_queued(tx: Tx, team_id: str) -> int:
    ((n,),) = tx.rows(
        "SELECT COUNT(*) FROM queued_starts WHERE state = 'queued' AND team_id = :team",
        {"team": team_id},
    )
    return int(n)


def waiting_totals(tx: Tx) -> tuple[int, Instant | None]:
    """Every team's starts still waiting for a slot: how many, and when the oldest arrived
    (the state index: the waiting rows only)."""
    ((n, oldest),) = tx.rows(
        "SELECT COUNT(*), MIN(created_ms) FROM queued_starts WHERE state = 'queued'", {}
    )
    return int(n), None if oldest is None else int(oldest)


def teams_waiting(tx: Tx, limit: int) -> list[str]:
    """Teams with a start queued, the one waiting longest first."""
    rows = tx.rows(
        "SELECT team_id FROM queued_starts WHERE state = 'queued' "
        "GROUP BY team_id ORDER BY MIN(created_ms) LIMIT :limit",
        {"limit": limit},
    )
    return [str(r[0]) for r in rows]


def oldest_waiting(tx: Tx, team_id: str) -> QueuedStart | None:
    """The team's oldest start not yet started: queued, or starting (which blocks the rest)."""
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM queued_starts WHERE state IN ('queued', 'starting') "
        "AND team_id = :team ORDER BY seq LIMIT 1",
        {"team": team_id},
    )
    return _of(rows[0]) if rows else None


def starting(tx: Tx, limit: int) -> list[QueuedStart]:
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM queued_starts WHERE state = 'starting' ORDER BY updated_ms "
        "LIMIT :limit",
        {"limit": limit},
    )
    return [_of(r) for r in rows]


def queued_holds_expiring(tx: Tx, before: Instant, limit: int) -> list[tuple[str, str]]:
    """(team, reservation) of queued starts whose hold ends before `before`."""
    rows = tx.rows(
        "SELECT q.team_id, q.reservation_id FROM queued_starts q JOIN reservations r "
        "ON r.team_id = q.team_id AND r.id = q.reservation_id "
        "WHERE q.state = 'queued' AND r.status = 'open' AND r.expires_ms < :before "
        "LIMIT :limit",
        {"before": before, "limit": limit},
    )
    return [(str(t), str(r)) for t, r in rows]


def queued_crawls(tx: Tx, team_id: str) -> list[tuple[str, str | None]]:
    rows = tx.rows(
        "SELECT id, target FROM queued_starts WHERE state IN ('queued', 'starting') "
        "AND team_id = :team AND endpoint = 'crawl' ORDER BY seq",
        {"team": team_id},
    )
    return [(str(i), t) for i, t in rows]


def move(
    tx: Tx,
    q: QueuedStart,
    frm: State,
    to: State,
    now: Instant,
    *,
    claimed_by: str | None = None,
    lease_until: Instant | None = None,
    upstream_id: str | None = None,
    error: str | None = None,
) -> bool:
    """Move a start from one state to the next: False (nothing changed) if it is no longer in
    `frm`, or (from starting) no longer claimed by `q.claimed_by`."""
    params: dict[str, Any] = {
        "team": q.team_id,
        "id": q.id,
        "frm": str(frm),
        "to": str(to),
        "now": now,
        "by": claimed_by,
        "lease": lease_until,
        "up": upstream_id,
        "error": error,
    }
    claim = ""
    if frm is State.STARTING and q.claimed_by is not None:
        claim = " AND claimed_by = :was"
        params["was"] = q.claimed_by
    changed = tx.changed(
        "UPDATE queued_starts SET state = :to, updated_ms = :now, claimed_by = :by, "
        "lease_ms = :lease, upstream_id = COALESCE(CAST(:up AS VARCHAR(200)), upstream_id), "
        "error = COALESCE(CAST(:error AS TEXT), error) "
        f"WHERE team_id = :team AND id = :id AND state = :frm{claim}",
        params,
    )
    return changed == 1
