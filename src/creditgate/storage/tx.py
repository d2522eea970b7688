"""A transaction on the driver's own connection, for the ledger's hot statements.

SQLAlchemy Core costs 50 to 150 µs of Python per statement, more than the statements themselves;
the write path runs a fixed set of hand-written statements (`:name` parameters) straight on the
DBAPI cursor instead. sqlite3 keeps each distinct statement prepared in its statement cache;
psycopg prepares a statement on the server once it has run a few times.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

log = logging.getLogger("creditgate.storage")

Params = dict[str, Any]
_CONVERTED: dict[str, str] = {}


def _pyformat(sql: str) -> str:
    """`:name` (what sqlite3 takes) as `%(name)s` (what psycopg takes), and a literal `%` as
    `%%`, converted once."""
    found = _CONVERTED.get(sql)
    if found is None:
        escaped = sql.replace("%", "%%")
        found = _CONVERTED.setdefault(sql, re.sub(r"(?<!:):(\w+)", r"%(\1)s", escaped))
    return found


class Tx:
    def __init__(self, driver_connection: Any, postgres: bool) -> None:
        self._conn = driver_connection
        self.postgres = postgres
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once this transaction has committed; never if it rolls back. Only
        Database.transaction commits and runs them: a Tx over someone else's transaction
        (`Tx.of`) drops them. An action that raises is logged: the commit stands."""
        self._after_commit.append(action)

    def committed(self) -> None:
        """The transaction committed: run the actions given to `after_commit`, once."""
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            try:
                action()
            except Exception:
                log.exception("an action after a commit failed (the commit stands)")

    @classmethod
    def of(cls, conn: Connection) -> Tx:
        """The transaction a SQLAlchemy connection has open, on its driver connection."""
        return cls(conn.connection.driver_connection, conn.dialect.name == "postgresql")

    def _sql(self, sql: str) -> str:
        return _pyformat(sql) if self.postgres else sql

    def rows(self, sql: str, params: Params) -> list[Sequence[Any]]:
        cursor = self._conn.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def run(self, sql: str, params: Params) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.execute(self._sql(sql), params)
        finally:
            cursor.close()

    def changed(self, sql: str, params: Params) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = self._conn.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def rows_of(self, statements: Sequence[tuple[str, Params]]) -> list[list[Sequence[Any]]]:
        """The rows of several statements, in order. On PostgreSQL they go in one pipeline:
        one round trip for all, run by the server in the order given."""
        if not self.postgres:
            return [self.rows(sql, params) for sql, params in statements]
        cursors = []
        try:
            with self._conn.pipeline():
                for sql, params in statements:
                    cursor = self._conn.cursor()
                    cursors.append(cursor)
                    cursor.execute(self._sql(sql), params)
            return [list(cursor.fetchall()) for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()

    def write_all(self, statements: Sequence[tuple[str, Sequence[Params]]]) -> None:
        """Run each statement once per parameter set, in order; on PostgreSQL in one pipeline."""
        if not self.postgres:
            for sql, seq in statements:
                self.many(sql, seq)
            return
        cursor = self._conn.cursor()
        try:
            with self._conn.pipeline():
                for sql, seq in statements:
                    if seq:
                        cursor.executemany(self._sql(sql), seq)
        finally:
            cursor.close()

    def many(self, sql: str, seq: Iterable[Params]) -> None:
        batch = list(seq)
        if not batch:
            return
        cursor = self._conn.cursor()
        try:
            cursor.executemany(self._sql(sql), batch)
        finally:
            cursor.close()


def in_list(name: str, values: Sequence[Any], params: Params) -> str:
    """`:name0, :name1, ...` for an IN (...) list, its values added to `params`."""
    for n, value in enumerate(values):
        params[f"{name}{n}"] = value
    return ", ".join(f":{name}{n}" for n in range(len(values)))
