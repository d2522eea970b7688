"""Fault injection for tests/guarantees/test_crash.py: a server that answers before it commits.

TEST ONLY. Python imports a module named `sitecustomize` from sys.path when it starts. The crash
test puts this directory on the PYTHONPATH of the one `creditgate serve` process it wants broken,
together with CREDITGATE_TEST_ACK_BEFORE_COMMIT=<seconds>; no other process, and no installed
creditgate, ever sees it, so nothing in src/ changes.

With both set, every write transaction of that server, instead of committing when its block
ends, hands its connection to a thread that commits it that many seconds later (otherwise it is
Database.write and Database.transaction of storage/database.py, locks included). The request
goes on and is answered 2xx while its write is not durable yet: exactly the break ledger
promise 3 forbids. A kill -9 inside the window loses acknowledged charges, and the test proves
its checker reports them. The transaction keeps its locks until it commits (SQLite's write lock,
PostgreSQL's team row), so the ledger stays consistent: only durability is broken.
"""

from __future__ import annotations

import os

DELAY_VARIABLE = "CREDITGATE_TEST_ACK_BEFORE_COMMIT"


def _install(delay: float) -> None:
    import threading
    import time
    from collections.abc import Iterator
    from contextlib import contextmanager
    from typing import Any

    from sqlalchemy import Connection

    from creditgate.storage.database import Database
    from creditgate.storage.tx import Tx

    @contextmanager
    def write_then_commit_later(self: Database) -> Iterator[Connection]:
        writer = self._writer
        writer.__enter__()
        try:
            conn = self.engine.connect()
            conn.info["write"] = True
            transaction = conn.begin()
        except BaseException:
            writer.__exit__(None, None, None)
            raise
        try:
            yield conn
        except BaseException:
            transaction.rollback()
            conn.close()
            writer.__exit__(None, None, None)
            raise

        def commit_later() -> None:
            time.sleep(delay)
            try:
                transaction.commit()
            finally:
                conn.close()
                writer.__exit__(None, None, None)

        threading.Thread(target=commit_later, daemon=True).start()

    @contextmanager
    def transaction_then_commit_later(self: Database) -> Iterator[Tx]:
        writer = self._writer
        writer.__enter__()
        try:
            raw = self.engine.raw_connection()
            driver: Any = raw.driver_connection
            if self.is_sqlite:
                driver.execute("BEGIN IMMEDIATE")
        except BaseException:
            writer.__exit__(None, None, None)
            raise
        try:
            yield Tx(driver, postgres=not self.is_sqlite)
        except BaseException:
            driver.rollback()
            raw.close()
            writer.__exit__(None, None, None)
            raise

        def commit_later() -> None:
            time.sleep(delay)
            try:
                driver.execute("COMMIT") if self.is_sqlite else driver.commit()
            finally:
                raw.close()
                writer.__exit__(None, None, None)

        threading.Thread(target=commit_later, daemon=True).start()

    Database.write = write_then_commit_later  # type: ignore[method-assign]
    Database.transaction = transaction_then_commit_later  # type: ignore[method-assign]


if os.environ.get(DELAY_VARIABLE):
    _install(float(os.environ[DELAY_VARIABLE]))
