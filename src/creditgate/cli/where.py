"""Which database a command uses, named by absolute path, and the guard on making a new one.

An operator in the wrong directory must not get a second, empty ledger without noticing: a
SQLite path that depends on the current directory (the default, or a relative one given) is
made absolute and named on stderr (`using ...`), and `creditgate migrate` creates a database file
only when told to (`--yes`, or a yes at the prompt on a terminal). Pure text and paths: nothing
here imports the server, a database driver or, before it needs the default, pydantic-settings
(`creditgate --help` imports none of them: tests/cli/test_cli_imports.py).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

# sqlite:///relative/path, sqlite:////absolute/path, sqlite+pysqlite:///..., with a ?query.
_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")


def _sqlite_path(url: str) -> str | None:
    """The file path a SQLite URL names, as written (None: no SQLite file, e.g. :memory:)."""
    found = _SQLITE.match(url)
    if found is None or found["path"] in ("", ":memory:"):
        return None
    return found["path"]


def depends_on_directory(url: str) -> bool:
    """Whether `url` names a SQLite file relative to the current directory."""
    path = _sqlite_path(url)
    return path is not None and not Path(path).is_absolute()


def absolute(url: str) -> str:
    """`url` with a relative SQLite path made absolute against the current directory (the file
    SQLite would open); any other URL unchanged."""
    found = _SQLITE.match(url)
    path = _sqlite_path(url)
    if found is None or path is None or Path(path).is_absolute():
        return url
    return f"{found['scheme']}:///{Path(path).absolute()}{found['query'] or ''}"


def chosen(given: str | None) -> tuple[str, bool]:
    """The database a command uses — `given` (--database-url or CREDITGATE_DATABASE_URL), else
    the default under the current directory — made absolute, and whether it depends on the
    current directory (then the command names it: `using ...`)."""
    if given:
        return absolute(given), depends_on_directory(given)
    from creditgate.settings import default_database_url  # pydantic-settings: not for --help

    return absolute(default_database_url()), True


def for_serve(flag: str | None) -> str:
    """`serve`'s database, absolute (every worker opens this very file), named on stderr when
    it depends on the current directory."""
    given = flag or os.environ.get("CREDITGATE_DATABASE_URL") or None
    url, relative = chosen(given)
    if relative:
        click.echo(f"using {url}", err=True)
    return url


def new_file(url: str) -> Path | None:
    """The SQLite file `url` names, if it does not exist yet (None: it exists, or no file)."""
    path = _sqlite_path(url)
    if path is None or Path(path).exists():
        return None
    return Path(path).absolute()


def stdin_is_a_terminal() -> bool:
    return sys.stdin.isatty()


class NewDatabaseRefused(Exception):
    """`migrate` would create a new database file and was not told to (the message says how)."""


def confirm_new(url: str, yes: bool) -> None:
    """Before `migrate` creates a SQLite file: go on with `yes`, ask on a terminal, and refuse
    (NewDatabaseRefused) otherwise, since a script in the wrong directory would get an empty
    ledger of its own and carry on."""
    new = new_file(url)
    if new is None or yes:
        return
    elsewhere = (
        "if your ledger is elsewhere, run from its directory or name it with --database-url "
        "or CREDITGATE_DATABASE_URL"
    )
    if stdin_is_a_terminal():
        click.echo(f"no database at {new}; {elsewhere}.", err=True)
        if click.confirm("Create a new, empty ledger there?", default=False, err=True):
            return
        raise NewDatabaseRefused(f"nothing created at {new}")
    raise NewDatabaseRefused(
        f"no database at {new}: `creditgate migrate --yes` creates a new, empty one there; "
        f"{elsewhere}"
    )
