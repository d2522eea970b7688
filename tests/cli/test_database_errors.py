"""Opening the database: only `migrate` and `serve` create or upgrade one, every failure is one
line (what failed, the URL without its password, what to do) with exit code 1, and the default
SQLite file is named whenever it is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from creditgate.cli import main
from creditgate.storage.database import Database
from creditgate.storage.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    shipped_head,
    upgrade,
)
from creditgate.storage.tables import metadata
from tests.conftest import POSTGRES_ADMIN_URL
from tests.server import free_port

A_KEY = "fc-" + "0" * 32
# Every command but `migrate` and `serve`: none creates or migrates a database.
COMMANDS = [
    ["verify"],
    ["usage", "t-1"],
    ["team", "list"],
    ["key", "list", "t-1"],
    ["plan", "list"],
    ["team", "create", "acme"],
    ["team", "update", "t-1", "--name", "renamed"],
    ["key", "create", "t-1"],
    ["key", "revoke", "k-1"],
    ["plan", "update", "pro", "--credits", "5"],
    ["grant", "t-1", "5"],
    ["charge", A_KEY, "1"],
]
# Unset while a command runs, and restored after: `serve` exports its flags to its workers.
NO_CREDITGATE_ENV: dict[str, str | None] = {
    name: None
    for name in {
        *(n for n in os.environ if n.startswith("CREDITGATE_")),
        *(
            f"CREDITGATE_{n}"
            for n in ("HOST", "PORT", "WORKERS", "DATABASE_URL", "UPSTREAM_URL", "REDIS_URL")
        ),
    }
}

HEAD = shipped_head()


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={**NO_CREDITGATE_ENV, **(env or {})})


def one_json(result: Result) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.output
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def refused(url: str, *args: str, status: int = 503) -> str:
    """Run a command on `url` in text and in JSON: both exit 1 with the same one line."""
    plain = invoke(*args, "--database-url", url)
    assert (plain.exit_code, plain.stdout) == (1, ""), plain.output
    assert plain.stderr.startswith("error: ") and plain.stderr.count("\n") == 1, plain.stderr
    message = plain.stderr.removeprefix("error: ").rstrip("\n")
    as_json = invoke(*args, "--json", "--database-url", url)
    assert as_json.exit_code == 1
    assert one_json(as_json) == {"success": False, "error": message, "status": status}
    assert as_json.stderr == ""
    return message


def serve_refused(url: str, cwd: Path, *args: str) -> str:
    """`creditgate serve` as a process: exit 1 at start-up, one line on stderr, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    command_line = [sys.executable, "-m", "creditgate", "serve", "--port", str(free_port())]
    done = subprocess.run(
        [*command_line, "--database-url", url, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr.removeprefix("Error: ").rstrip("\n")


def table_names(url: str) -> set[str]:
    db = Database(url, create=False)
    try:
        with db.engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        db.dispose()


@pytest.fixture
def server_base(postgres_url: str) -> str:
    """postgresql://user@host:port of the test server (skipped, or failed in CI, without it)."""
    return postgres_url.rsplit("/", 1)[0]


@pytest.fixture
def empty_postgres(server_base: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"creditgate_scratch_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_no_command_but_migrate_creates_a_missing_sqlite_database(
    args: list[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/missing/dir/creditgate.db"
    assert refused(url, *args) == (
        f"no database at {url} ({tmp_path}/missing/dir/creditgate.db does not exist): if the "
        "ledger is elsewhere, run from its directory or name it (--database-url or "
        "CREDITGATE_DATABASE_URL); `creditgate migrate` creates a new, empty one here"
    )
    assert list(tmp_path.iterdir()) == []  # not even the directory


@pytest.mark.parametrize("args", COMMANDS[:5], ids=" ".join)
def test_commands_refuse_an_empty_postgresql_database_and_create_nothing(
    args: list[str], empty_postgres: str
) -> None:
    assert refused(empty_postgres, *args) == (
        f"the database at {empty_postgres} has no creditgate schema: run `creditgate migrate` "
        "to create it, or check the URL"
    )
    assert table_names(empty_postgres) == set()


def test_commands_refuse_an_older_schema_until_it_is_migrated(
    database_url: str, db: Database
) -> None:
    config = alembic_config(db)
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    try:
        assert (current_revision(db), head_revision(db)) == ("0004", HEAD)
        for args in (["plan", "list"], ["verify"], ["team", "create", "acme"]):
            assert refused(database_url, *args) == (
                f"the database at {database_url} is at schema revision 0004 and this "
                f"creditgate needs {HEAD}: run `creditgate migrate`"
            )
        assert current_revision(db) == "0004"
        migrated = invoke("migrate", "--json", "--database-url", database_url)
        assert one_json(migrated) == {
            "success": True,
            "data": {"database": database_url, "revision": HEAD, "was": "0004"},
        }
        assert current_revision(db) == HEAD
        assert invoke("plan", "list", "--database-url", database_url).exit_code == 0
    finally:
        upgrade(db)  # the PostgreSQL database is shared by the tests that follow


def test_an_unknown_schema_revision_is_refused_even_by_migrate(
    database_url: str, db: Database
) -> None:
    with db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    try:
        for args in (["plan", "list"], ["migrate"]):
            assert refused(database_url, *args) == (
                f"the database at {database_url} is at schema revision 9999, which creditgate "
                "0.1.0 does not know (a newer creditgate migrated it): use that version, or "
                "check the URL"
            )
        assert current_revision(db) == "9999"
    finally:
        with db.write() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision(db)}
            )


def _failure(case: str, request: pytest.FixtureRequest) -> tuple[str, str, int]:
    """(URL, the one line expected, JSON status) of each way a database URL can fail."""
    if case == "refused port":
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/creditgate"
        return (
            url,
            f"cannot connect to the database at {url}: connection refused; check that "
            "PostgreSQL runs at that host and port and accepts TCP/IP connections",
            503,
        )
    if case == "mysql":
        return (
            "mysql://app:s3cret@db.example:3306/ledger",
            "unsupported database URL mysql://app:***@db.example:3306/ledger: creditgate keeps "
            "its ledger in SQLite or PostgreSQL; give sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/database",
            400,
        )
    if case == "bare path":
        return (
            "./x.db",
            "not a database URL: ./x.db; give sqlite:///path/to/file.db or "
            "postgresql://user@host:5432/database (a SQLite file: sqlite:///./x.db)",
            400,
        )
    base: str = request.getfixturevalue("server_base")
    if case == "missing database":
        url = f"{base}/creditgate_missing_{uuid.uuid4().hex[:8]}"
        name = url.rsplit("/", 1)[1]
        return (
            url,
            f'the PostgreSQL server of {url} has no database "{name}": create it '
            f"(createdb {name}), then run `creditgate migrate`",
            503,
        )
    assert case == "unknown role"
    host = base.split("@", 1)[1]
    return (
        f"postgresql://no_such_role:s3cret@{host}/postgres",
        f"the PostgreSQL server of postgresql://no_such_role:***@{host}/postgres has no role "
        '"no_such_role": put an existing user in the URL, or create the role',
        503,
    )


@pytest.mark.parametrize(
    "case", ["missing database", "refused port", "unknown role", "mysql", "bare path"]
)
def test_a_database_error_is_one_line_with_exit_1_for_the_cli_and_serve(
    case: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, expected, status = _failure(case, request)
    monkeypatch.chdir(tmp_path)  # a bare path would be created here
    for args in (["team", "list"], ["migrate"], ["grant", "t-1", "5"]):
        assert refused(url, *args, status=status) == expected
    assert serve_refused(url, tmp_path) == expected
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def foreign_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that holds another application's table and no creditgate schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/shop.db"
    else:
        url = request.getfixturevalue("empty_postgres")
    db = Database(url)
    with db.write() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    db.dispose()
    return url


def test_serve_and_migrate_refuse_a_database_of_other_tables_unless_allowed(
    foreign_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = foreign_database
    expected = (
        f"the database at {url} holds 1 other table(s) (orders) and no creditgate schema: give "
        "creditgate a database of its own, or --allow-foreign-tables to add its tables beside "
        "them"
    )
    assert serve_refused(url, tmp_path) == expected
    assert refused(url, "migrate") == expected
    assert refused(url, "team", "list") == (
        f"the database at {url} has no creditgate schema and holds other tables (orders): "
        "check the URL, or run `creditgate migrate --allow-foreign-tables` to add creditgate's "
        "tables beside them"
    )
    assert table_names(url) == {"orders"}

    monkeypatch.setattr(uvicorn, "run", lambda *_args, **_kwargs: None)
    served = invoke("serve", "--database-url", url, "--allow-foreign-tables")
    assert served.exit_code == 0, served.output
    assert table_names(url) == {"orders", "alembic_version", *metadata.tables}
    assert invoke("migrate", "--database-url", url).exit_code == 0  # creditgate's own now
    assert [
        p["id"] for p in one_json(invoke("plan", "list", "--json", "--database-url", url))["data"]
    ][:2] == ["free", "hobby"]


def test_the_default_database_is_named_on_every_command_that_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    url = f"sqlite:///{here}/.creditgate/creditgate.db"
    using = f"using {url}\n"

    listed = invoke("team", "list")
    assert listed.exit_code == 1
    assert listed.stderr == using + (
        f"error: no database at {url} ({here}/.creditgate/creditgate.db does not exist): if the "
        "ledger is elsewhere, run from its directory or name it (--database-url or "
        "CREDITGATE_DATABASE_URL); `creditgate migrate` creates a new, empty one here\n"
    )
    assert list(here.iterdir()) == []

    migrated = invoke("migrate", "--json", "--yes")
    assert (migrated.exit_code, migrated.stderr) == (0, using)
    assert one_json(migrated) == {
        "success": True,
        "data": {"database": url, "revision": HEAD, "was": None},
    }
    created = invoke("team", "create", "acme", "--json")
    assert (created.exit_code, created.stderr) == (0, using)
    assert one_json(created)["data"]["name"] == "acme"

    monkeypatch.setattr(uvicorn, "run", lambda *_args, **_kwargs: None)
    served = invoke("serve")
    assert served.exit_code == 0, served.output
    assert served.stderr.splitlines()[0] == using.rstrip("\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    other = invoke("verify")
    assert other.exit_code == 1
    assert other.stderr.splitlines()[0] == f"using sqlite:///{elsewhere}/.creditgate/creditgate.db"
    assert list(elsewhere.iterdir()) == []
    given = invoke("team", "list", "--json", "--database-url", url)  # named: no `using` line
    assert (given.exit_code, given.stderr) == (0, "")
    assert [t["name"] for t in one_json(given)["data"]] == ["acme"]


def test_a_schema_of_its_own_in_a_shared_postgresql_database_needs_no_flag(
    empty_postgres: str,
) -> None:
    db = Database(empty_postgres)
    with db.write() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE SCHEMA creditgate"))
    url = f"{empty_postgres}?options=-csearch_path%3Dcreditgate"
    assert invoke("migrate", "--database-url", url).exit_code == 0
    assert invoke("team", "create", "acme", "--database-url", url).exit_code == 0
    with db.engine.connect() as conn:
        found = inspect(conn)
        assert found.get_table_names() == ["orders"]  # the public schema
        assert set(found.get_table_names(schema="creditgate")) == {
            "alembic_version",
            *metadata.tables,
        }
    db.dispose()
