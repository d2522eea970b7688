"""The database handle: one code path for SQLite and PostgreSQL; their differences live here.

Writes that move credits are serialised per team: on PostgreSQL by a row lock on the team
(SELECT ... FOR UPDATE, taken by the ledger), on SQLite by BEGIN IMMEDIATE, which takes the
database's single write lock up front instead of upgrading a read lock (and deadlocking) later.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool, QueuePool

from creditgate.storage.tx import Tx

URL_EXAMPLES = "sqlite:///path/to/file.db or postgresql://user@host:5432/database"

SQLITE_BUSY_TIMEOUT_MS = 30_000
# WAL with synchronous=NORMAL: a committed write survives a crash of the process (kill -9);
# a power cut or OS crash may lose the last commits. FULL also survives those, at an fsync per
# commit. CREDITGATE_SQLITE_SYNCHRONOUS=FULL chooses it.
SQLITE_SYNCHRONOUS = (
    "FULL" if os.environ.get("CREDITGATE_SQLITE_SYNCHRONOUS", "").upper() == "FULL" else "NORMAL"
)


# SQLite's messages for a database that cannot be used now, as opposed to a failed statement.
SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
)


def unavailable_errors() -> tuple[type[Exception], ...]:
    """The exception classes a database failure may raise, for a handler to catch: wrapped by
    SQLAlchemy, or the drivers' own (from Database.fetch). is_unavailable() tells which are."""
    import psycopg

    return (
        sa_exc.OperationalError,
        sa_exc.TimeoutError,
        psycopg.OperationalError,
        sqlite3.OperationalError,
    )


class DeadlineExceeded(sa_exc.TimeoutError):
    """A database call did not end within its deadline, enforced by creditgate (web/context.py:
    bounded()), whatever the server does; or too many earlier calls are still stuck to start
    another. The call may still end later: a write's outcome is unknown (a lost answer)."""


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` is the database being unreachable, frozen, timed out, overloaded or
    locked (worth a retry), rather than a statement being wrong (a bug)."""
    if isinstance(error, sa_exc.TimeoutError):  # no connection free in time, or a deadline
        return True
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if isinstance(cause, sqlite3.OperationalError):
        return str(cause).lower().startswith(SQLITE_UNAVAILABLE) or is_disk_full(cause)
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(cause, psycopg.OperationalError)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is a write refused for a full disk: SQLite's SQLITE_FULL, PostgreSQL's
    `disk_full` (SQLSTATE 53100)."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if isinstance(cause, sqlite3.OperationalError):
        return "database or disk is full" in str(cause).lower()
    return getattr(cause, "sqlstate", None) == "53100"


def free_disk_bytes(db_url: str) -> int | None:
    """Free bytes for the SQLite database file's folder (what a write may still use); None
    for a server database (its disk is the server's to watch) or an in-memory one."""
    parsed = make_url(db_url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    folder = os.path.dirname(os.path.abspath(parsed.database)) or "."
    try:
        found = os.statvfs(folder)
    except OSError:
        return None
    return found.f_bavail * found.f_frsize


class DatabaseUnusable(Exception):
    """The database cannot be used as asked. `message` is one line for an operator: what
    failed, at which URL (its password hidden), and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadDatabaseUrl(DatabaseUnusable):
    """The URL names no database creditgate can use (unparsable, or another kind)."""


def display_url(url: str) -> str:
    """`url` as an operator may see it: as given, with any password replaced by ***."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        shown = re.sub(r"(://[^/@:]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&]*", r"\1***", shown)


def database_errors() -> tuple[type[Exception], ...]:
    """Every exception a database may raise to a caller: SQLAlchemy's, or the drivers' own."""
    import psycopg

    return (DatabaseUnusable, sa_exc.SQLAlchemyError, psycopg.Error, sqlite3.Error)


def explain(url: str, error: BaseException) -> str:
    """One line for an operator on a failure of the database at `url` (one of
    database_errors()): what failed, where, and what to do."""
    if isinstance(error, DatabaseUnusable):
        return error.message
    where = display_url(url)
    if isinstance(error, DeadlineExceeded):
        return f"the database at {where} did not answer in time: retry"
    if isinstance(error, sa_exc.TimeoutError):
        return f"no connection to the database at {where} came free in time: retry"
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    said = " ".join(str(cause).split()) or type(cause).__name__
    try:
        password = make_url(url).password
    except sa_exc.ArgumentError:
        password = None
    if password:
        said = said.replace(str(password), "***")
    lowered = said.lower()
    if found := re.search(r'database "([^"]*)" does not exist', said):
        return (
            f'the PostgreSQL server of {where} has no database "{found[1]}": create it '
            f"(createdb {found[1]}), then run `creditgate migrate`"
        )
    if found := re.search(r'role "([^"]*)" does not exist', said):
        return (
            f'the PostgreSQL server of {where} has no role "{found[1]}": put an existing user '
            "in the URL, or create the role"
        )
    if found := re.search(r'password authentication failed for user "([^"]*)"', said):
        return (
            f'the PostgreSQL server of {where} refused the password of user "{found[1]}": '
            "check the password in the URL"
        )
    if "connection refused" in lowered:
        return (
            f"cannot connect to the database at {where}: connection refused; check that "
            "PostgreSQL runs at that host and port and accepts TCP/IP connections"
        )
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return f"cannot connect to the database at {where}: unknown host; check the URL's host"
    if "timeout expired" in lowered:
        return (
            f"cannot connect to the database at {where}: no answer in time; check that the "
            "server is up and reachable"
        )
    if "unable to open database file" in lowered:
        return (
            f"cannot open the SQLite database {where}: check that the path is a file in a "
            "directory that exists and may be written"
        )
    if "file is not a database" in lowered:
        return f"{where} is not a SQLite database: check the path in the URL"
    if "database is locked" in lowered:
        return f"the SQLite database {where} is locked by another process: retry"
    return f"the database at {where} failed: {said}"


def _postgres_timeouts(parsed: URL, seconds: float) -> dict[str, Any]:
    """psycopg connect arguments bounding a connection attempt (at least 2 s, libpq's floor)
    and every statement (server side), kept beside any `options` the URL already sets."""
    statement = f"-c statement_timeout={max(1, round(seconds * 1000))}"
    given = parsed.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    return {
        "connect_timeout": max(2, math.ceil(seconds)),
        "options": f"{given} {statement}" if given else statement,
        # A peer that stopped answering ends its connection in the kernel too, so a call
        # abandoned at its deadline does not keep its connection for ever: unacknowledged
        # sends give up after TCP_USER_TIMEOUT, an idle link after a few keepalive probes.
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
        "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": max(1000, round(seconds * 1000)) + 10_000,
    }


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` (what most tools print) for psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


KEEPALIVE_IDLE_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3

DEFAULT_CONNECTIONS = 20  # CREDITGATE_DB_CONNECTIONS: a process's PostgreSQL connections
MIN_CONNECTIONS = 3  # one for each pool
POOL_WAIT_SECONDS = 1.0  # the most a call waits for a pooled connection (less with a less timeout)


@dataclass(frozen=True, slots=True)
class Budget:
    """A process's PostgreSQL connections split between its three pools: `writes` (the
    writer's transactions) a quarter, `reads` (single-statement reads) half the rest, `main`
    (every other read and write, background rounds) the remainder; never more open at once."""

    main: int
    reads: int
    writes: int

    @classmethod
    def of(cls, connections: int) -> Budget:
        if connections < MIN_CONNECTIONS:
            raise ValueError(f"a connection budget is at least {MIN_CONNECTIONS} (one a pool)")
        writes = max(1, round(connections / 4))
        reads = max(1, (connections - writes) // 2)
        return cls(main=connections - writes - reads, reads=reads, writes=writes)


DataVersion = tuple[int, int]  # (read connection's number, its PRAGMA data_version)


@dataclass(frozen=True, slots=True)
class _Reader:
    number: int
    conn: sqlite3.Connection


class Database:
    """`timeout_seconds` (the server's CREDITGATE_DB_TIMEOUT_SECONDS) bounds, on PostgreSQL,
    connecting, each statement (server side) and each call of the server (client side:
    `call_seconds`, enforced by web/context.py); None (the CLI, migrations) leaves statements
    unbounded, so long maintenance statements are not cut short, and `connect_timeout_seconds`
    (whole seconds, libpq's floor of 2) bounds only connecting.

    `connections` (CREDITGATE_DB_CONNECTIONS) is the most PostgreSQL connections this handle
    opens at once, its pools together (Budget); a call that finds its pool's all in use waits
    at most POOL_WAIT_SECONDS (or the timeout if less), then fails as unavailable. On SQLite,
    0 opens a connection a use (NullPool)."""

    def __init__(
        self,
        url: str,
        *,
        connections: int = DEFAULT_CONNECTIONS,
        timeout_seconds: float | None = None,
        connect_timeout_seconds: float | None = None,
        create: bool = True,
    ) -> None:
        """`create=False`: a SQLite file that does not exist is refused (DatabaseUnusable),
        not created, nor its directory."""
        self.url = normalize_url(url)
        self.shown_url = display_url(url)
        try:
            parsed = make_url(self.url)
        except sa_exc.ArgumentError:
            path = f" (a SQLite file: sqlite:///{url})" if "://" not in url else ""
            raise BadDatabaseUrl(
                f"not a database URL: {self.shown_url}; give {URL_EXAMPLES}{path}"
            ) from None
        self.dialect = parsed.get_backend_name()
        # The client-side deadline of one call of a PostgreSQL server (None: unbounded).
        self.call_seconds: float | None = None
        self.budget: Budget | None = None
        self.calls = StuckCalls(limit=2 * max(connections, MIN_CONNECTIONS))
        self._converted: dict[str, str] = {}
        # Reads of unchanged rows kept in this process's memory, each validated against the
        # database before use (storage/snapshots.py, storage/usage.py say how).
        self.memo: dict[str, Any] = {}
        self._reader_path: str | None = None
        self._readers = threading.local()
        self._all_readers: list[_Reader] = []
        self._reader_numbers = itertools.count()
        self._reader_lock = threading.Lock()
        self._writer: AbstractContextManager[object] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                _sqlite_file(Path(parsed.database), self.shown_url, create)
                if not parsed.query:  # a plain file: hot reads get a connection of their own
                    self._reader_path = parsed.database
            self.engine: Engine = create_engine(
                self.url,
                poolclass=NullPool if connections == 0 else None,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
            _configure_sqlite(self.engine)
            self.reads: Engine = self.engine
            self.writes: Engine = self.engine
        elif self.dialect == "postgresql":
            # 0: a connection a use, none kept (the CLI's probe)
            budget = Budget.of(connections) if connections else Budget(0, 0, 0)
            self.budget = budget if connections else None
            bounds: dict[str, Any] = {"max_overflow": 0} if connections else {}
            if not connections:
                bounds["poolclass"] = NullPool
            if connect_timeout_seconds is not None:  # the CLI: connecting only, not statements
                bounds["connect_args"] = {"connect_timeout": max(2, connect_timeout_seconds)}
            if timeout_seconds is not None:
                self.call_seconds = timeout_seconds
                bounds["connect_args"] = _postgres_timeouts(parsed, timeout_seconds)
                bounds["pool_timeout"] = min(timeout_seconds, POOL_WAIT_SECONDS)
            self.engine = create_engine(
                self.url, pool_pre_ping=True, **_sized(budget.main), **bounds
            )
            # Single-statement reads (storage/snapshots.py) need no transaction: autocommit
            # connections skip BEGIN, ROLLBACK and the pre-ping, three round trips a request.
            self.reads = create_engine(
                self.url,
                isolation_level="AUTOCOMMIT",
                pool_recycle=300,
                **_sized(budget.reads),
                **bounds,
            )
            # The write path's transactions (transaction()): no pre-ping, a round trip each;
            # a connection that fails as unavailable is dropped from the pool instead.
            self.writes = create_engine(
                self.url, pool_recycle=300, **_sized(budget.writes), **bounds
            )
        else:
            raise BadDatabaseUrl(
                f"unsupported database URL {self.shown_url}: creditgate keeps its ledger in "
                f"SQLite or PostgreSQL; give {URL_EXAMPLES}"
            )

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

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction on the driver's connection (storage/tx.py): commits when the
        block ends, rolls back if it raises; once committed, runs what `Tx.after_commit` was
        given. Queued behind this process's other SQLite writers as write() is; on SQLite it
        begins IMMEDIATE, taking the write lock up front."""
        with self._writer:
            raw = self.writes.raw_connection()
            driver: Any = raw.driver_connection
            try:
                if self.is_sqlite:
                    driver.execute("BEGIN IMMEDIATE")
                tx = Tx(driver, postgres=not self.is_sqlite)
                yield tx
                if self.is_sqlite:
                    driver.execute("COMMIT")
                else:
                    driver.commit()
            except BaseException as exc:
                if is_unavailable(exc):
                    raw.invalidate()  # gone or broken: the next transaction reconnects
                else:
                    with contextlib.suppress(Exception):
                        driver.rollback()
                raise
            finally:
                raw.close()
            tx.committed()

    def fetch(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Rows of one hand-written SELECT (`:name` parameters), on the driver's connection.

        For the hottest reads only: it skips SQLAlchemy's per-statement work, and one statement
        is one consistent snapshot on both databases, so it needs no transaction.
        """
        return self.fetch_versioned(sql, params)[1]

    def data_version(self) -> DataVersion | None:
        """A value that changes whenever any connection, of this process or another, commits a
        change to the database: SQLite's `PRAGMA data_version` on this thread's read
        connection (which never writes), with that connection's number, since two connections'
        counts are not comparable; None where there is none this cheap (PostgreSQL, in-memory
        SQLite). A read made after this value was taken is current while it stays the same."""
        if self._reader_path is None:
            return None
        reader = self._read_connection()
        return reader.number, reader.conn.execute("PRAGMA data_version").fetchone()[0]

    def fetch_versioned(
        self, sql: str, params: dict[str, Any]
    ) -> tuple[DataVersion | None, list[Any]]:
        """`fetch`, with the data_version() taken just before the statement ran (None where
        there is none): rows read under version V are current while data_version() is V."""
        if self._reader_path is not None:
            reader = self._read_connection()
            version = reader.number, reader.conn.execute("PRAGMA data_version").fetchone()[0]
            return version, reader.conn.execute(sql, params).fetchall()
        raw = self.reads.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(self._driver_sql(sql), params)
            rows = cursor.fetchall()
            cursor.close()
        except BaseException as exc:
            if is_unavailable(exc):
                raw.invalidate()  # gone, broken or cut off mid-answer: never reused
            raise
        finally:
            raw.close()
        return None, list(rows)

    def _read_connection(self) -> _Reader:
        """This thread's SQLite connection for fetch() and data_version(), opened once and
        read-only. Each thread has its own, so a read waiting on the file in a worker thread
        never holds up the event loop's. In autocommit, each SELECT reads one consistent
        snapshot; in WAL mode readers do not wait for the writer."""
        reader: _Reader | None = getattr(self._readers, "reader", None)
        if reader is None:
            assert self._reader_path is not None
            conn = sqlite3.connect(
                self._reader_path,
                isolation_level=None,
                check_same_thread=False,  # only its thread uses it; dispose() closes it
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only=ON")
            with self._reader_lock:
                reader = _Reader(next(self._reader_numbers), conn)
                self._all_readers.append(reader)
            self._readers.reader = reader
        return reader

    def ping(self) -> None:
        """One `SELECT 1`: the database answers (the readiness check)."""
        self.fetch("SELECT 1", {})

    def server_room(self) -> int | None:
        """PostgreSQL: how many connections the server lets in for users without a reserve
        (max_connections less superuser_reserved_connections and, from 16, reserved_connections);
        None on SQLite."""
        if self.is_sqlite:
            return None
        rows = self.fetch(
            "SELECT CAST(current_setting('max_connections') AS integer)"
            " - CAST(current_setting('superuser_reserved_connections') AS integer)"
            " - coalesce(CAST(current_setting('reserved_connections', true) AS integer), 0)",
            {},
        )
        return int(rows[0][0])

    def _driver_sql(self, sql: str) -> str:
        if self.dialect != "postgresql":
            return sql  # sqlite3 takes :name as it is
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted.setdefault(sql, re.sub(r":(\w+)", r"%(\1)s", sql))
        return converted

    def pools(self) -> dict[str, QueuePool]:
        """The connection pools of this process, by name (`main`, and on PostgreSQL `reads`
        and `writes`), for the metrics; a pool that keeps no connections (NullPool) is left
        out."""
        engines = {"main": self.engine, "reads": self.reads, "writes": self.writes}
        found: dict[str, QueuePool] = {}
        seen: set[int] = set()
        for name, engine in engines.items():
            if id(engine) not in seen and isinstance(engine.pool, QueuePool):
                found[name] = engine.pool
            seen.add(id(engine))
        return found

    def dispose(self) -> None:
        self.engine.dispose()
        self.reads.dispose()
        self.writes.dispose()
        with self._reader_lock:
            for reader in self._all_readers:
                reader.conn.close()
            self._all_readers.clear()
            self._readers = threading.local()
        self.memo.clear()


def _sized(connections: int) -> dict[str, Any]:
    """A pool's size (none for 0: NullPool keeps no connections)."""
    return {"pool_size": connections} if connections else {}


class StuckCalls:
    """The calls of this database abandoned at their deadline whose threads still run (a
    frozen server holds them until it thaws or the kernel gives the link up): at `limit`, a
    new call fails at once instead of adding a thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.lock = threading.Lock()


def _sqlite_file(path: Path, shown_url: str, create: bool) -> None:
    """Make the file's directory and the file, readable by its owner only (`create`: SQLite's
    -wal and -shm files take the file's mode; the ledger holds key hashes), or refuse a file
    that does not exist."""
    if not create:
        if not path.exists():
            raise DatabaseUnusable(
                f"no database at {shown_url} ({path.absolute()} does not exist): if the ledger "
                "is elsewhere, run from its directory or name it (--database-url or "
                "CREDITGATE_DATABASE_URL); `creditgate migrate` creates a new, empty one here"
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise DatabaseUnusable(
            f"cannot create {path.absolute()} ({shown_url}): "
            f"{exc.strerror or exc}; check the path and its permissions"
        ) from None


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
