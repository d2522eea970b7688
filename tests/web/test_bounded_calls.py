"""web/context.py: a database call is answered within its deadline, and calls abandoned at it
do not pile up (a frozen server holds their threads until it thaws)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from creditgate.storage.database import Database, DeadlineExceeded, is_unavailable
from creditgate.web.context import blocking

DEADLINE = 0.2
MARGIN = 2.0  # a loaded machine's scheduling


def test_a_call_past_its_deadline_is_abandoned_and_stuck_calls_do_not_pile_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path}/creditgate.db")
    monkeypatch.setattr(db, "call_seconds", DEADLINE)
    db.calls.limit = 1
    thawed = threading.Event()
    ran: list[str] = []

    def frozen(_db: Database) -> str:
        ran.append("frozen")
        thawed.wait(30)
        return "late"

    def quick(_db: Database) -> str:
        ran.append("quick")
        return "now"

    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as stuck:
            await blocking(frozen, db)
        assert time.monotonic() - started < DEADLINE + MARGIN
        assert is_unavailable(stuck.value)  # answered as a 503, Retry-After
        assert db.calls.count == 1
        with pytest.raises(DeadlineExceeded, match="stuck"):  # at once, nothing started
            await blocking(quick, db)
        assert ran == ["frozen"]
        thawed.set()
        for _ in range(300):
            if db.calls.count == 0:
                break
            await asyncio.sleep(0.01)
        assert db.calls.count == 0
        assert await blocking(quick, db) == "now"

    try:
        asyncio.run(scenario())
    finally:
        thawed.set()
        db.dispose()
