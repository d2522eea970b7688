"""How commands print: one JSON object with --json, readable text otherwise; and where they act:
the database (--database-url) or a running server's admin API (--server, cli/remote.py).

The JSON is the admin API's envelope: {"success": true, "data": <the object>} for one object,
{"success": true, "data": [...], "cursor": null, "hasMore": false} for a listing (every row:
the CLI pages through to the end), {"success": false, "error": "...", "status": N} on refusal.

Nothing here imports SQLAlchemy or the server at module level: `creditgate --help`, and every
command sent to a server, must start in tens of milliseconds (tests/cli/test_cli_imports.py).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import orjson

from creditgate.cli.location import Location, locate
from creditgate.domain.errors import STATUS, LedgerError
from creditgate.domain.text import refuse_nul

if TYPE_CHECKING:
    from creditgate.cli.remote import Remote
    from creditgate.storage.database import Database

F = TypeVar("F", bound=Callable[..., Any])
# A server that accepts and never answers must not hang a command for libpq's two minutes.
CONNECT_TIMEOUT_SECONDS = 10


class Refused(Exception):
    """A refusal to print as every other: its message, status and details (a server's, or the
    CLI's own when a command cannot run where it was sent)."""

    def __init__(self, message: str, status: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.details = message, status, details or {}


class Output:
    def __init__(self, as_json: bool, location: Location) -> None:
        self.as_json = as_json
        self.location = location
        self._db: Database | None = None
        self._remote: Remote | None = None

    # --- where the command acts -------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.location.database_url or ""

    @property
    def shown_url(self) -> str:
        from creditgate.storage.database import display_url

        return display_url(self.database_url)

    @property
    def remote(self) -> Remote | None:
        """The server's admin API when the command was sent to one (--server or a profile)."""
        if self.location.server is None:
            return None
        if self._remote is None:
            from creditgate.cli.remote import Remote

            self._remote = Remote(self.location.server, self.location.token())
        return self._remote

    def local_only(self, what: str) -> None:
        """Refuse, in one line, a command that only runs against the database itself."""
        if self.location.server is not None:
            raise Refused(
                f"{what} works on the database itself, not through a server: give "
                "--database-url (or run it on the server's machine)",
                400,
            )

    @property
    def db(self) -> Database:
        """The database, at this creditgate's schema; nothing is created or migrated here
        (only `creditgate migrate` and `serve` do that)."""
        self.local_only("this command")
        if self._db is None:
            from creditgate.storage.migrate import require_schema

            self._db = self._open(create=False)
            require_schema(self._db)
        return self._db

    def revision_before_migrating(self) -> str | None:
        """The schema revision the database has now (None: none yet, or no database yet)."""
        from creditgate.storage.database import Database, database_errors
        from creditgate.storage.migrate import current_revision

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
        from creditgate.storage.migrate import migrate_schema

        self.local_only("migrate")
        self._db = self._open(create=True)
        migrate_schema(self._db, allow_foreign_tables=allow_foreign_tables)
        return self._db

    def _open(self, create: bool) -> Database:
        from creditgate.storage.database import Database

        if self.location.relative:  # named by absolute path (cli/where.py)
            click.echo(f"using {self.shown_url}", err=True)
        return Database(
            self.database_url,
            connections=3,
            create=create,
            connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
        )

    # --- what it prints ---------------------------------------------------------------------

    def emit(self, data: dict[str, Any], text: str) -> None:
        """One object, in the admin API's envelope: {"success": true, "data": {...}}."""
        self._print({"data": data}, text)

    def emit_list(self, rows: list[dict[str, Any]], text: str) -> None:
        """Every row of a listing, shaped as the admin API's last page of it."""
        self._print({"data": rows, "cursor": None, "hasMore": False}, text)

    def emit_rows(self, rows: list[dict[str, Any]], text: str) -> None:
        """An answer that is a list and no listing (no pages), as the admin API sends it."""
        self._print({"data": rows}, text)

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
        if self._remote is not None:
            self._remote.close()


def command_options(fn: F) -> F:
    """Every command takes --json and where to act (--database-url, or --server with its
    token), after its own arguments."""

    @click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
    @click.option(
        "--database-url",
        envvar="CREDITGATE_DATABASE_URL",
        default=None,
        help="sqlite:///path or postgresql://... (default: the embedded SQLite file)",
    )
    @click.option(
        "--server",
        envvar="CREDITGATE_SERVER",
        default=None,
        help="Act through this creditgate server's admin API instead of the database "
        "(token: CREDITGATE_ADMIN_TOKEN or --token-file).",
    )
    @click.option("--token-file", default=None, help="Read the server's admin token from here.")
    @click.option(
        "--profile",
        envvar="CREDITGATE_PROFILE",
        default=None,
        help="A [profile.NAME] of ~/.config/creditgate/config.toml (server, token_file or "
        "database_url).",
    )
    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        as_json: bool,
        database_url: str | None,
        server: str | None,
        token_file: str | None,
        profile: str | None,
        **kwargs: Any,
    ) -> Any:
        try:
            location = locate(database_url, server, token_file, profile)
        except ValueError as exc:  # a bad profile or config: a usage error, one line
            raise click.UsageError(str(exc)) from None
        out = Output(as_json, location)
        try:
            for name, value in kwargs.items():  # what a script passes, before any lookup
                if isinstance(value, str):
                    refuse_nul(value, name)
            return fn(out, *args, **kwargs)
        except LedgerError as exc:
            fail(out, exc.message, STATUS[type(exc)], exc.details)
        except Refused as exc:
            fail(out, exc.message, exc.status, exc.details)
        except Exception as exc:
            _database_failure(out, exc)
            raise
        finally:
            out.close()

    return wrapper  # type: ignore[return-value]


def _database_failure(out: Output, exc: Exception) -> None:
    """A database's failure as one line (what failed, where, what to do); anything else is
    left to propagate. SQLAlchemy is consulted only if a command loaded it."""
    if "creditgate.storage.database" not in sys.modules:
        return
    from creditgate.storage.database import BadDatabaseUrl, database_errors, explain

    if isinstance(exc, database_errors()):
        status = 400 if isinstance(exc, BadDatabaseUrl) else 503
        fail(out, explain(out.database_url, exc), status)


def fail(out: Output, message: str, status: int, details: dict[str, Any] | None = None) -> NoReturn:
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
