"""The CLI answers at once: parsing a command line, printing help and acting through a server
import nothing of the server (the ASGI app, the dashboard, Starlette, uvicorn) and no
SQLAlchemy or Alembic; a command on a database at this creditgate's schema loads SQLAlchemy but
no Alembic and still nothing of the server. Checked by module, which is stable; the time it
takes is measured in bench/cli.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.server import free_port

SERVER_SIDE = ("starlette", "uvicorn", "creditgate.app", "creditgate.dashboard", "creditgate.web")
DATABASE = ("sqlalchemy", "alembic", "psycopg", "creditgate.storage", "creditgate.services")
# Records the modules loaded when the command ends, however it ends.
PROBE = (
    "import atexit, json, os, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w').write(json.dumps(sorted("
    "sys.modules))))\n"
    "from creditgate.cli import main\n"
    "main()\n"
)


def loaded(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    env.update(MODULES_OUT=str(out), CREDITGATE_CONFIG=str(tmp_path / "none.toml"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    return set(json.loads(out.read_text())), done


def of(modules: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.startswith(prefixes)}


def test_help_imports_nothing_of_the_server_or_the_database(tmp_path: Path) -> None:
    for args in (["--help"], ["team", "--help"], ["usage", "--help"], ["key", "list", "-h"]):
        modules, done = loaded(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        assert of(modules, SERVER_SIDE + DATABASE + ("httpx", "pydantic")) == set(), args
    # `ledger` takes its listings and filters from the ledger's views: it loads them (and
    # SQLAlchemy) to say what they are, and still nothing of the server.
    modules, done = loaded(tmp_path, "ledger", "--help")
    assert done.returncode == 0 and "entries" in done.stdout, done.stderr
    assert of(modules, SERVER_SIDE) == set()


def test_a_command_through_a_server_imports_no_database_and_no_server(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens: the command fails in one line
    modules, done = loaded(tmp_path, "usage", "acme", "--server", nobody)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot reach the creditgate server at {nobody}")
    assert "httpx" in modules
    assert of(modules, SERVER_SIDE + DATABASE + ("pydantic",)) == set()


def test_a_command_on_a_database_at_head_loads_no_alembic_and_no_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'creditgate.db'}"
    _, migrated = loaded(tmp_path, "migrate", "--yes", "--database-url", url)
    assert migrated.returncode == 0, migrated.stderr
    _, created = loaded(tmp_path, "team", "create", "acme", "--database-url", url)
    assert created.returncode == 0, created.stderr
    modules, done = loaded(tmp_path, "usage", "acme", "--database-url", url)
    assert done.returncode == 0, done.stderr
    assert "remaining: 500 of 500 plan credits" in done.stdout
    assert "sqlalchemy" in modules
    assert of(modules, (*SERVER_SIDE, "alembic", "pydantic_settings")) == set()
