"""How commands print: one JSON object with --json, readable text otherwise.

The JSON is the admin API's envelope: {"success": true, "data": <the object>} for one object,
{"success": true, "data": [...], "cursor": null, "hasMore": false} for a listing (every row:
the CLI pages through to the end), {"success": false, "error": "...", "status": N} on refusal."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from creditgate.cli import where
from creditgate.domain.errors import STATUS, LedgerError
from creditgate.domain.text import refuse_nul
from creditgate.storage.database import (
    BadDatabaseUrl,
    Database,
    database_errors,
    display_url,
    explain,
)
from creditgate.storage.migrate import current_revision, migrate_schema, require_schema

F = TypeVar("F", bound=Callable[..., Any])
# A server that accepts and never answers must not hang a command for libpq's two minutes.
CONNECT_TIMEOUT_SECONDS = 10


class Output:
    def __init__(self, as_json: bool, database_url: str | None) -> None:
        self.as_json = as_json
        # Absolute; named on stderr when it depends on the current directory (cli/where.py).
        self.database_url, self.relative = where.chosen(database_url)
        self.shown_url = display_url(self.database_url)
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        """The database, at this creditgate's schema; nothing is created or migrated here
        (only `creditgate migrate` and `serve` do that)."""
        if self._db is None:
            self._db = self._open(create=False)
            require_schema(self._db)
        return self._db

    def revision_before_migrating(self) -> str | None:
        """The schema revision the database has now (None: none yet, or no database yet)."""
        try:
            probe = Database(self.database_url, connections=0, create=False)
        except database_errors():
            return None
        try:
            return current_revision(probe)
        finally:
            probe.dispose()

    def migrated(self, allow_foreign_tables: bool) -> Database:
        """The database, created and migrated first if need be (`creditgate migrate`)."""
        self._db = self._open(create=True)
        migrate_schema(self._db, allow_foreign_tables=allow_foreign_tables)
        return self._db

    def _open(self, create: bool) -> Database:
        if self.relative:
            click.echo(f"using {self.shown_url}", err=True)
        return Database(
            self.database_url,
            connections=3,
            create=create,
            connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
        )

    def emit(self, data: dict[str, Any], text: str) -> None:
        """One object, in the admin API's envelope: {"success": true, "data": {...}}."""
        self._print({"data": data}, text)

    def emit_list(self, rows: list[dict[str, Any]], text: str) -> None:
        """Every row of a listing, shaped as the admin API's last page of it."""
        self._print({"data": rows, "cursor": None, "hasMore": False}, text)

    def emit_page(self, rows: list[dict[str, Any]], cursor: str | None) -> None:
        """One page of a listing, as the admin API answers it (`cursor` null on the last)."""
        self._print({"data": rows, "cursor": cursor, "hasMore": cursor is not None}, "")

    def _print(self, envelope: dict[str, Any], text: str) -> None:
        if self.as_json:
            click.echo(orjson.dumps({"success": True, **envelope}).decode())
        else:
            click.echo(text)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def command_options(fn: F) -> F:
    """Every command takes --json and --database-url, after its own arguments."""

    @click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
    @click.option(
        "--database-url",
        envvar="CREDITGATE_DATABASE_URL",
        default=None,
        help="sqlite:///path or postgresql://... (default: the embedded SQLite file)",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool, database_url: str | None, **kwargs: Any) -> Any:
        out = Output(as_json, database_url)
        try:
            for name, value in kwargs.items():  # what a script passes, before any lookup
                if isinstance(value, str):
                    refuse_nul(value, name)
            return fn(out, *args, **kwargs)
        except LedgerError as exc:
            fail(out, exc.message, STATUS[type(exc)], exc.details)
        except database_errors() as exc:  # one line: what failed, where, what to do
            fail(
                out, explain(out.database_url, exc), 400 if isinstance(exc, BadDatabaseUrl) else 503
            )
        finally:
            out.close()

    return wrapper  # type: ignore[return-value]


def fail(out: Output, message: str, status: int, details: dict[str, Any] | None = None) -> None:
    if out.as_json:
        click.echo(
            orjson.dumps(
                {"success": False, "error": message, "status": status, **(details or {})}
            ).decode()
        )
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(1)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
