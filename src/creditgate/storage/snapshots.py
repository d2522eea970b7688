"""The account routes' hot read: a key, its team, plan and balance in one statement.

Every Firecrawl account request authenticates and most then report a balance; doing both in a
single round trip, as plain SQL on the driver's connection, keeps those requests cheap. The
statement is one SELECT, so it reads one consistent snapshot on both databases.

On SQLite a snapshot is kept in memory and served again while it is provably current: no
connection (of any process) has committed since it was read (`Database.data_version`, one
PRAGMA), and the clock has not reached the first instant at which the same rows would read
differently (a grant starting or expiring, an open hold expiring, the team's next rollover,
the key's own expiry: a kept snapshot never outlives the key it authenticates).
The statement returns that instant with the snapshot. PostgreSQL has no equally cheap
commit counter, so there every request reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from creditgate.domain.instants import Instant
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team
from creditgate.storage.database import Database, DataVersion

_LIVE = "g.team_id = t.id AND g.starts_ms <= :now AND (g.expires_ms IS NULL OR g.expires_ms > :now)"
_OPEN = "r.team_id = t.id AND r.status = 'open' AND r.expires_ms > :now"
SNAPSHOT_SQL = f"""
SELECT k.id, k.team_id, k.name, k.hint, k.cap, k.created_ms, k.revoked_ms,
       t.name, t.plan_id, t.anchor_ms, t.suspended, t.allow_overage, t.created_ms,
       t.granted_through_ms, t.next_rollover_ms, t.last_charge_ms,
       p.credits, p.interval, p.concurrency, p.scrape_rpm, p.crawl_rpm,
       EXISTS (SELECT 1 FROM grants g WHERE g.team_id = t.id),
       (SELECT COALESCE(SUM(g.remaining), 0) FROM grants g WHERE {_LIVE}),
       (SELECT COALESCE(SUM(r.amount - r.settled), 0) FROM reservations r
         WHERE {_OPEN} AND r.amount > r.settled),
       (SELECT COALESCE(SUM(r.slots), 0) FROM reservations r WHERE {_OPEN}),
       (SELECT g.amount FROM grants g WHERE {_LIVE} AND g.kind = 'plan'
         ORDER BY g.starts_ms DESC LIMIT 1),
       (SELECT MIN(g.starts_ms) FROM grants g WHERE g.team_id = t.id AND g.starts_ms > :now),
       (SELECT MIN(g.expires_ms) FROM grants g WHERE g.team_id = t.id AND g.expires_ms > :now),
       (SELECT MIN(r.expires_ms) FROM reservations r WHERE {_OPEN}),
       k.expires_ms, k.rpm
FROM api_keys k JOIN teams t ON t.id = k.team_id JOIN plans p ON p.id = t.plan_id
WHERE k.key_hash = :hash
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    key: ApiKey
    team: Team
    plan: Plan
    has_grants: bool
    live_balance: int  # unexpired grants' remaining credits
    held: int  # open reservations
    running: int  # the open reservations' slots: pages the team may have in flight
    plan_grant: int | None  # the current period's plan credits, if granted


MEMO = "snapshots"
MEMO_SIZE = 10_000  # keys remembered; past it the oldest is forgotten


@dataclass(frozen=True, slots=True)
class _Kept:
    snap: Snapshot
    version: DataVersion  # Database.data_version() before it was read
    read_at: Instant
    until: Instant | None  # the first instant it may read differently; None: never


def snapshot(db: Database, key_hash: str, now: Instant) -> Snapshot | None:
    """The key's snapshot at `now`: the one in memory if still current (see the module's
    docstring), else read. An unknown key is never kept: it is read every time."""
    kept: dict[str, _Kept] = db.memo.setdefault(MEMO, {})
    found = kept.get(key_hash)
    if (
        found is not None
        and found.read_at <= now
        and (found.until is None or now < found.until)
        and found.version == db.data_version()
    ):
        return found.snap
    version, rows = db.fetch_versioned(SNAPSHOT_SQL, {"hash": key_hash, "now": now})
    if not rows:
        return None
    snap = _from_row(rows[0])
    if version is not None:
        ends = (*rows[0][26:29], snap.team.next_rollover, snap.key.expires_at)
        changes = [t for t in ends if t is not None]
        if len(kept) >= MEMO_SIZE:
            kept.pop(next(iter(kept)), None)
        kept[key_hash] = _Kept(snap, version, now, min(changes, default=None))
    return snap


def _from_row(r: Any) -> Snapshot:
    key = ApiKey(
        id=r[0],
        team_id=r[1],
        name=r[2],
        hint=r[3],
        cap=r[4],
        created_at=r[5],
        revoked_at=r[6],
        expires_at=r[29],
        rpm=r[30],
    )
    team = Team(
        id=r[1],
        name=r[7],
        plan_id=r[8],
        anchor=r[9],
        suspended=bool(r[10]),
        allow_overage=bool(r[11]),
        created_at=r[12],
        granted_through=r[13],
        next_rollover=r[14],
        last_charge_at=r[15],
    )
    plan = Plan(
        id=r[8], credits=r[16], interval=r[17], concurrency=r[18], scrape_rpm=r[19], crawl_rpm=r[20]
    )
    return Snapshot(
        key,
        team,
        plan,
        bool(r[21]),
        int(r[22]),
        int(r[23]),
        int(r[24]),
        None if r[25] is None else int(r[25]),
    )
