"""Group commit: a team's concurrent operations in this process share one transaction.

A request hands its operation to the writer and awaits it; writer threads take each team's
pending operations together, apply them in one transaction (services/ledger.py) and resolve
every one only after that transaction committed — as TigerBeetle batches, and as the ledger's
promises need: nothing is acknowledged before it is durable. One team per transaction (ledger
promise 9), so a batch never locks two teams; a team is written by one thread at a time, and
its next operations wait for the running batch and go into the next one.

No request thread hops to a pool: the event loop only queues and awaits. If a batch fails for a
reason other than the database being unavailable, each of its operations is tried alone, so one
faulty operation fails by itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from creditgate.domain.errors import LedgerError
from creditgate.services import ledger
from creditgate.services.ledger import Operation
from creditgate.storage.database import Database, DeadlineExceeded, is_unavailable

log = logging.getLogger("creditgate.writer")

MAX_BATCH = 256

Pending = tuple[Operation[Any], "Future[Any]"]


class Writer:
    def __init__(self, db: Database, threads: int | None = None) -> None:
        self.db = db
        # No more threads than the writes pool has connections: one more would only wait.
        most = 1 if db.budget is None else db.budget.writes
        self._threads = threads or (1 if db.is_sqlite else min(4, most))
        self._lock = threading.Condition()
        self._pending: dict[str, list[Pending]] = {}
        self._ready: deque[str] = deque()  # teams with pending work and no batch running
        self._busy: set[str] = set()
        self._unrouted: list[Pending] = []  # operations whose team is not known yet
        self._closing = False
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self._threads):
            worker = threading.Thread(target=self._work, name=f"creditgate-writer-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def close(self) -> None:
        """Finish what is queued, then stop."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        for worker in self._workers:
            worker.join()
        self._workers.clear()

    def submit(self, op: Operation[Any], team_id: str | None = None) -> Future[Any]:
        """Queue `op`; `team_id` when the caller knows it, else a writer thread finds it (with
        the other operations waiting for theirs, in one read)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closing or not self._workers:
                raise RuntimeError("the writer is not running")
            if team_id is None:
                self._unrouted.append((op, future))
                self._lock.notify()
            else:
                self._route(team_id, (op, future))
        return future

    def _route(self, team_id: str, pending: Pending) -> None:
        self._pending.setdefault(team_id, []).append(pending)
        if team_id not in self._busy and team_id not in self._ready:
            self._ready.append(team_id)
            self._lock.notify()

    async def run(self, op: Operation[Any], team_id: str | None = None) -> Any:
        """Apply `op` to its team's book with whatever else the team has pending: its result
        once committed, or its LedgerError raised. A waiter that is cancelled (its client
        left) does not cancel the write: once submitted, an operation is applied.

        Within the database's call deadline (Database.call_seconds), else DeadlineExceeded: an
        operation no writer thread has taken yet is then dropped (never applied); one in a
        batch already sent may still commit (a lost answer: a charge's retry with its
        idempotency key gets the original result; a hold left open is released by the sweep
        at its time-to-live or as an orphan)."""
        future = self.submit(op, team_id)
        waiting = asyncio.shield(asyncio.wrap_future(future))
        if self.db.call_seconds is None:
            return await waiting
        try:
            async with asyncio.timeout(self.db.call_seconds):
                return await waiting
        except TimeoutError:
            if future.done() and not future.cancelled():  # answered just as time ran out
                return future.result()
            dropped = future.cancel()  # True: not taken by a writer thread, never applied
            outcome = "not applied" if dropped else "its outcome unknown"
            raise DeadlineExceeded(
                f"a write got no answer from the database in {self.db.call_seconds} s ({outcome})"
            ) from None

    # --- the writer threads --------------------------------------------------------------------

    def _work(self) -> None:
        """A writer thread. Nothing that goes wrong in a batch may stop it: a stopped writer
        would leave every later request of this process waiting for ever."""
        while True:
            with self._lock:
                while not (self._ready or self._unrouted) and not (
                    self._closing and not self._pending
                ):
                    self._lock.wait()
                if self._unrouted:
                    unrouted, self._unrouted = self._unrouted, []
                elif self._ready:
                    unrouted = []
                    team_id = self._ready.popleft()
                    queued = self._pending.pop(team_id)
                    batch, rest = queued[:MAX_BATCH], queued[MAX_BATCH:]
                    if rest:
                        self._pending[team_id] = rest
                    # Operations whose waiter gave up at its deadline are dropped here; the
                    # rest can no longer be cancelled (their outcome is the batch's).
                    batch = [p for p in batch if p[1].set_running_or_notify_cancel()]
                    self._busy.add(team_id)
                else:
                    return
            if unrouted:
                self._find(unrouted)
                continue
            if not batch:
                with self._lock:
                    self._busy.discard(team_id)
                    if team_id in self._pending:
                        self._ready.append(team_id)
                        self._lock.notify()
                continue
            try:
                self._commit(team_id, batch)
            except Exception as exc:  # a bug: answer the batch with it and keep writing
                log.exception("a writer batch failed unexpectedly")
                for _, future in batch:
                    _answer(future, exc)
            finally:
                with self._lock:
                    self._busy.discard(team_id)
                    if team_id in self._pending:
                        self._ready.append(team_id)
                        self._lock.notify()

    def _find(self, unrouted: list[Pending]) -> None:
        """Step 0 for the operations that name their team by a key or a reservation."""
        unrouted = [p for p in unrouted if not p[1].cancelled()]
        if not unrouted:
            return
        try:
            teams = ledger.find_all(self.db, [op for op, _ in unrouted])
        except Exception as exc:
            for _, future in unrouted:
                _answer(future, exc)
            return
        with self._lock:
            for pending, team in zip(unrouted, teams, strict=True):
                if isinstance(team, LedgerError):
                    _answer(pending[1], team)
                else:
                    self._route(team, pending)

    def _commit(self, team_id: str, batch: list[Pending]) -> None:
        try:
            with self.db.transaction() as tx:
                outcomes = ledger.apply(tx, team_id, [op for op, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not is_unavailable(exc):
                log.warning("a batch of %d failed (%s): trying each alone", len(batch), exc)
                for one in batch:
                    self._commit(team_id, [one])
                return
            for _, future in batch:
                _answer(future, exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _answer(future, outcome)


def _answer(future: Future[Any], outcome: Any) -> None:
    """Resolve `future` with a result or an exception; one nobody waits for any more (its
    waiter gave up) is skipped: its operation was applied all the same."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
