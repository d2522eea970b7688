"""Gateway processes and their heartbeats: holds outlive no process.

A gateway process registers itself at start and beats every few seconds. A request's hold
names the process serving it; when a process stops beating (kill -9, a crash, a lost machine),
its requests will never settle, so any live process releases their holds — at its own start at
once, and then on every sweep — instead of waiting for their time-to-live. A process of this
same host whose pid no longer runs is dead at once, beats or not: a restart after kill -9
releases its holds immediately.
"""

from __future__ import annotations

import os
import socket

from creditgate.domain.instants import Instant
from creditgate.services import reservations
from creditgate.storage import process_rows as processes
from creditgate.storage.database import Database

HEARTBEAT_MS = 5_000
DEAD_AFTER_MS = 4 * HEARTBEAT_MS  # four missed beats


def beat(db: Database, process_id: str, now: Instant) -> None:
    """Record that this process is alive; the first beat registers it."""
    with db.write() as conn:
        if not processes.beat(conn, process_id, now):  # new, or declared dead while stalled
            processes.insert_process(conn, process_id, os.getpid(), socket.gethostname()[:255], now)


def release_orphans(db: Database, now: Instant) -> int:
    """Release the holds of requests served by processes that stopped beating."""
    with db.write() as conn:
        processes.forget_dead(conn, now - DEAD_AFTER_MS)
        beating = processes.beating(conn, now - DEAD_AFTER_MS)
    here = socket.gethostname()[:255]
    live = [pid_id for pid_id, pid, host in beating if host != here or _running(pid)]
    return reservations.release_orphans(db, live, now)


def live(db: Database, now: Instant) -> list[str]:
    """The gateway processes alive now (read only): beating, and on this host running."""
    with db.read() as conn:
        beating = processes.beating(conn, now - DEAD_AFTER_MS)
    here = socket.gethostname()[:255]
    return [pid_id for pid_id, pid, host in beating if host != here or _running(pid)]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def unregister(db: Database, process_id: str) -> None:
    with db.write() as conn:
        processes.remove(conn, process_id)
