"""A frozen, slow or locked database is a quick 503 in the envelope, and readiness says so."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from creditgate.app.serve import app_from_settings
from creditgate.services import account, teams
from creditgate.settings import Settings
from creditgate.storage import database
from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.helpers import bearer
from tests.server import app_in_thread

DOWN = "The database is unavailable. Please retry shortly."
UNAVAILABLE = (503, {"success": False, "error": DOWN})
NOT_READY = (
    503,
    {"success": False, "error": "Not ready: database unavailable.", "failed": ["database"]},
)
A_KEY = "fc-" + "0" * 32


@pytest.fixture
def upstream() -> Iterator[str]:
    """A fake Firecrawl that answers: readiness then names the database alone."""
    with app_in_thread(make_app(FakeState())) as url:
        yield url


@pytest.fixture
def frozen_postgres() -> Iterator[str]:
    """A PostgreSQL URL whose server accepts connections and never says a word."""
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(64)
        yield f"postgresql://postgres@127.0.0.1:{frozen.getsockname()[1]}/postgres"


@pytest.mark.parametrize("failure", ["frozen", "slow statements", "sqlite locked"])
def test_an_unavailable_database_is_a_503_within_seconds_and_readiness_reports_it(
    failure: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    upstream: str,
) -> None:
    ready = 200
    blocker: sqlite3.Connection | None = None
    if failure == "frozen":
        url = request.getfixturevalue("frozen_postgres")
        ready = 503
    elif failure == "slow statements":
        url = request.getfixturevalue("postgres_url")
    else:
        monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
        url = f"sqlite:///{tmp_path}/creditgate.db"
        Database(url).dispose()  # creates the file in WAL mode
    settings = Settings(
        database_url=url,
        admin_token=ADMIN_TOKEN,
        db_timeout_seconds=1,
        sweep_seconds=0,
        # A gateway too: its health routes are creditgate's own, never forwarded upstream.
        upstream_url=upstream,
        follow_seconds=0,
    )
    app = app_from_settings(settings)
    db: Database = app.state.ctx.db
    if failure == "slow statements":

        def sleeping_snapshot(*_args: object) -> None:
            db.fetch("SELECT pg_sleep(10)", {})

        def sleeping_list(*_args: object) -> None:
            with db.read() as conn:
                conn.execute(text("SELECT pg_sleep(10)"))

        monkeypatch.setattr(account, "snapshot", sleeping_snapshot)
        monkeypatch.setattr(teams, "page_teams", sleeping_list)

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            if failure == "sqlite locked":
                assert client.get("/health/ready").status_code == 200  # a pooled connection
                blocker = sqlite3.connect(f"{tmp_path}/creditgate.db", isolation_level=None)
                blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            calls = [
                ("GET", "/v2/team/credit-usage", bearer(A_KEY)),
                ("GET", "/admin/teams", bearer(ADMIN_TOKEN)),
            ]
            if failure == "sqlite locked":  # reads go on in WAL mode; writes wait, then 503
                calls = [("POST", "/admin/teams", bearer(ADMIN_TOKEN))]
            for method, path, headers in calls:
                started = time.monotonic()
                response = client.request(method, path, headers=headers, json={"name": "a"})
                assert time.monotonic() - started < 4, path
                assert (response.status_code, response.json()) == UNAVAILABLE, path
            for path in ("/health/ready", "/v1/health/readiness"):
                started = time.monotonic()
                response = client.get(path)
                assert time.monotonic() - started < 3, path
                expected = NOT_READY if ready == 503 else (200, {"success": True})
                assert (response.status_code, response.json()) == expected, path
            for path in ("/health", "/health/live", "/v1/health/liveness"):
                assert client.get(path).json() == {"success": True}, path
    finally:
        if blocker is not None:
            blocker.close()
        db.dispose()


def test_a_command_against_a_frozen_postgresql_fails_in_one_line_within_seconds(
    frozen_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts connections and never answers hung `team list` for libpq's two
    minutes; the CLI bounds connecting."""
    from click.testing import CliRunner

    from creditgate.cli import main, output

    monkeypatch.setattr(output, "CONNECT_TIMEOUT_SECONDS", 2, raising=False)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["team", "list", "--database-url", frozen_postgres])
    assert time.monotonic() - started < 8
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "Traceback" not in line and "127.0.0.1" in line
