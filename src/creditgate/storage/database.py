"""The database handle: one code path for SQLite and PostgreSQL; their differences live here.

Writes that move credits are serialised per team: on PostgreSQL by a row lock on the team
(SELECT ... FOR UPDATE, taken by the ledger), on SQLite by BEGIN IMMEDIATE, which takes the
database's single write lock up front instead of upgrading a read lock (and deadlocking) later.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
# WAL with synchronous=NORMAL: a committed write survives a crash of the process (kill -9);
# a power cut or OS crash may lose the last commits. FULL also survives those, at an fsync per
# commit. CREDITGATE_SQLITE_SYNCHRONOUS=FULL chooses it.
SQLITE_SYNCHRONOUS = (
    "FULL" if os.environ.get("CREDITGATE_SQLITE_SYNCHRONOUS", "").upper() == "FULL" else "NORMAL"
)


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` (what most tools print) for psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._converted: dict[str, str] = {}
        self._writer: AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url,
                poolclass=NullPool if pool_size == 0 else None,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
            _configure_sqlite(self.engine)
            self.reads: Engine = self.engine
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            # Single-statement reads (storage/snapshots.py) need no transaction: autocommit
            # connections skip BEGIN, ROLLBACK and the pre-ping, three round trips a request.
            self.reads = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                isolation_level="AUTOCOMMIT",
                pool_recycle=300,
            )
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.info["write"] = False
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        On SQLite, writers of this process first queue on a lock: SQLite has one writer at a
        time anyway, and its busy handler waits by sleeping (up to 100 ms a try), which under
        contention costs far more than an orderly queue.
        """
        with self._writer, self.engine.connect() as conn:
            conn.info["write"] = True
            with conn.begin():
                yield conn

    def fetch(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Rows of one hand-written SELECT (`:name` parameters), on the driver's connection.

        For the hottest reads only: it skips SQLAlchemy's per-statement work, and one statement
        is one consistent snapshot on both databases, so it needs no transaction.
        """
        raw = self.reads.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(self._driver_sql(sql), params)
            rows = cursor.fetchall()
            cursor.close()
        finally:
            raw.close()
        return list(rows)

    def _driver_sql(self, sql: str) -> str:
        if self.dialect != "postgresql":
            return sql  # sqlite3 takes :name as it is
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted.setdefault(sql, re.sub(r":(\w+)", r"%(\1)s", sql))
        return converted

    def dispose(self) -> None:
        self.engine.dispose()
        self.reads.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide how transactions start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
