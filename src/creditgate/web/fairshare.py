"""Fair shares per team of what a gateway process shares between teams (issue 19).

Found by measurement (tests/guarantees/test_fair_share.py): 400 concurrent status reads of one
team's crawl against an upstream slow to answer status each went on, once answered, to apply
the report (`jobs.apply_report`) under the team's row lock. Hundreds of them queued on that one
lock, each holding a worker thread and a pooled database connection, so every other team's
database work waited behind them (PostgreSQL refused new connections: "too many clients"),
while their upstream calls filled the upstream connection pool. So, per team and per process:

- `reads`: a team's job reads and cancels in flight (a read past it waits briefly, then is a
  429 with Retry-After);
- `database`: a team's database calls at once on the read path (the rest of its requests wait
  their turn, not other teams');
- `upstream` (web/upstream.py): a team's connections to the upstream, a share of the pool.

Each is a dict lookup and a semaphore on the hot path; a team's entry is dropped once nothing
of it waits or runs, so memory is bounded by the teams active at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

TEAM_READS_IN_FLIGHT = 16  # a team's job reads and cancels at once, per process
TEAM_READS_WAIT_SECONDS = 1.0  # how long a read past them waits for a place before its 429
TEAM_DATABASE_CALLS = 4  # a team's database calls at once on the read path, per process


class Busy(Exception):
    """No place for the team within the wait."""


@dataclass
class _Entry:
    places: asyncio.Semaphore
    users: int = 0  # holding or waiting
    held: int = 0


@dataclass
class TeamGate:
    """At most `size` of a team's somethings at once (in this process and event loop)."""

    size: int
    _teams: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = max(self.size, 1)

    async def acquire(self, team: str, wait_s: float | None = None) -> None:
        """Take one of the team's places; past `wait_s` (None: no bound) raise Busy."""
        entry = self._teams.get(team)
        if entry is None:
            entry = self._teams[team] = _Entry(asyncio.Semaphore(self.size))
        entry.users += 1
        try:
            if wait_s is None:
                await entry.places.acquire()
            else:
                async with asyncio.timeout(max(wait_s, 0.0)):
                    await entry.places.acquire()
            entry.held += 1
        except BaseException as exc:
            self._leave(team, entry)
            if isinstance(exc, TimeoutError):
                raise Busy from None
            raise

    def release(self, team: str) -> None:
        entry = self._teams[team]
        entry.held -= 1
        entry.places.release()
        self._leave(team, entry)

    def _leave(self, team: str, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._teams.get(team) is entry:
            del self._teams[team]

    @asynccontextmanager
    async def place(self, team: str, wait_s: float | None = None) -> AsyncIterator[None]:
        """Hold one of the team's places for the block (Busy past `wait_s`)."""
        await self.acquire(team, wait_s)
        try:
            yield
        finally:
            self.release(team)

    def in_use(self, team: str) -> int:
        """Places the team holds now (for tests and metrics)."""
        entry = self._teams.get(team)
        return 0 if entry is None else entry.held


@dataclass
class FairShares:
    """Every per-team bound of one process (AppContext.shares)."""

    reads: TeamGate = field(default_factory=lambda: TeamGate(TEAM_READS_IN_FLIGHT))
    reads_wait_seconds: float = TEAM_READS_WAIT_SECONDS
    database: TeamGate = field(default_factory=lambda: TeamGate(TEAM_DATABASE_CALLS))
