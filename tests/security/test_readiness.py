"""Readiness means "send me traffic" (issue 19): 503 only when this process cannot work — the
database does not answer, or its disk is full — naming it and nothing else; Redis and the
upstream, which it works on without and every process shares, are named `degraded` in a 200.
Liveness and /metrics need no token and carry no team data."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from creditgate.app import asgi
from creditgate.app.asgi import create_app
from creditgate.storage.database import Database, is_disk_full
from creditgate.web import errors, limits
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import ADMIN_TOKEN, Clock
from tests.gateway.fake_firecrawl import FakeState, make_app
from tests.helpers import team_with_key
from tests.server import app_in_thread, free_port


@pytest.fixture
def frozen() -> Iterator[str]:
    """An address that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with app_in_thread(make_app(FakeState())) as url:
        yield url


def ready(ctx: AppContext) -> tuple[int, object]:
    ctx.sweep_seconds = 0
    with TestClient(create_app(ctx)) as client:
        response = client.get("/health/ready")
        assert client.get("/v1/health/readiness").json() == response.json()
        return response.status_code, response.json()


def not_ready(*failed: str, degraded: tuple[str, ...] = ()) -> tuple[int, object]:
    error = f"Not ready: {', '.join(failed)} unavailable."
    extra = {"degraded": list(degraded)} if degraded else {}
    return 503, {"success": False, "error": error, "failed": list(failed), **extra}


def degraded(*names: str) -> tuple[int, object]:
    return 200, {"success": True, "degraded": list(names)}


def test_ready_checks_the_upstream_in_gateway_mode(db: Database, upstream_url: str) -> None:
    ctx = AppContext(db=db, upstream=Upstream(upstream_url, None), follow_seconds=0)
    assert ready(ctx) == (200, {"success": True})


@pytest.mark.parametrize("how", ["unreachable", "frozen"])
def test_an_upstream_that_does_not_answer_is_named_but_ready(
    db: Database, how: str, request: pytest.FixtureRequest
) -> None:
    host = request.getfixturevalue("frozen") if how == "frozen" else f"127.0.0.1:{free_port()}"
    ctx = AppContext(db=db, upstream=Upstream(f"http://{host}", "fc-upstream-secret"))
    ctx.follow_seconds = 0
    assert ready(ctx) == degraded("upstream")


@pytest.mark.parametrize("how", ["unreachable", "frozen"])
def test_a_redis_that_does_not_answer_is_named_but_ready(
    db: Database, how: str, request: pytest.FixtureRequest
) -> None:
    host = request.getfixturevalue("frozen") if how == "frozen" else f"127.0.0.1:{free_port()}"
    ctx = AppContext(db=db, limiter=limits.RedisLimiter(f"redis://{host}/0"))
    assert ready(ctx) == degraded("redis")


def test_every_dependency_down_is_named_in_order(
    clock: Clock, frozen: str, tmp_path: object
) -> None:
    """A database that is a frozen PostgreSQL, Redis and the upstream gone: all three named."""
    db = Database(f"postgresql://postgres@{frozen}/postgres", timeout_seconds=1)
    try:
        ctx = AppContext(
            db=db,
            clock=clock,
            limiter=limits.RedisLimiter(f"redis://127.0.0.1:{free_port()}/0"),
            upstream=Upstream(f"http://127.0.0.1:{free_port()}", None),
            follow_seconds=0,
        )
        with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
            response = client.get("/health/ready")
            assert (response.status_code, response.json()) == not_ready(
                "database", degraded=("redis", "upstream")
            )
            assert client.get("/health/live").json() == {"success": True}
    finally:
        db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    path = tmp_path / "creditgate.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.dispose()


def test_a_full_disk_is_told_from_other_failures() -> None:
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(psycopg.errors.DiskFull("could not extend file"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full(psycopg.errors.QueryCanceled("statement timeout"))


def test_a_sqlite_disk_nearly_full_is_not_ready(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgi, "free_disk_bytes", lambda url: asgi.MIN_FREE_DISK_BYTES - 1)
    assert ready(AppContext(db=sqlite_db)) == not_ready("disk")
    monkeypatch.setattr(asgi, "free_disk_bytes", lambda url: asgi.MIN_FREE_DISK_BYTES)
    assert ready(AppContext(db=sqlite_db)) == (200, {"success": True})


def test_a_write_refused_for_a_full_disk_is_a_503_naming_it_and_makes_it_unready(
    sqlite_db: Database, clock: Clock
) -> None:
    """Found by an outside tester (issue 19): a full disk made every charge a generic 500 and
    `/health/ready` stayed 200. SQLite's own limit on the file's size is a real SQLITE_FULL."""
    _, key, _ = team_with_key(sqlite_db, clock.now)
    ctx = AppContext(db=sqlite_db, admin_token=ADMIN_TOKEN, clock=clock, sweep_seconds=0)
    with TestClient(create_app(ctx)) as client:
        with sqlite_db.write() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with sqlite_db.write() as conn:
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
        refused = None
        for n in range(200):  # until a page more is needed
            answer = client.post(
                "/admin/charges",
                headers=admin,
                json={"key": key, "credits": 1, "idempotencyKey": f"full-{n}", "target": "x" * 900},
            )
            if answer.status_code != 201:
                refused = answer
                break
        assert refused is not None, "the database never filled"
        assert refused.status_code == 503
        assert refused.json() == {"success": False, "error": errors.DISK_FULL}
        assert refused.headers["retry-after"] == str(errors.DISK_FULL_RETRY_S)
        assert client.get("/health/ready").json()["failed"] == ["disk"]
