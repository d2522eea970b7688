"""Readiness names the dependency that does not answer — the database, Redis, the upstream —
and nothing else; liveness and /metrics need no token and carry no team data."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from creditgate.app.asgi import create_app
from creditgate.storage.database import Database
from creditgate.web import limits
from creditgate.web.context import AppContext
from creditgate.web.upstream import Upstream
from tests.conftest import Clock
from tests.gateway.fake_firecrawl import FakeState, make_app
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


def not_ready(*failed: str) -> tuple[int, object]:
    error = f"Not ready: {', '.join(failed)} unavailable."
    return 503, {"success": False, "error": error, "failed": list(failed)}


def test_ready_checks_the_upstream_in_gateway_mode(db: Database, upstream_url: str) -> None:
    ctx = AppContext(db=db, upstream=Upstream(upstream_url, None), follow_seconds=0)
    assert ready(ctx) == (200, {"success": True})


@pytest.mark.parametrize("how", ["unreachable", "frozen"])
def test_an_upstream_that_does_not_answer_is_named(
    db: Database, how: str, request: pytest.FixtureRequest
) -> None:
    host = request.getfixturevalue("frozen") if how == "frozen" else f"127.0.0.1:{free_port()}"
    ctx = AppContext(db=db, upstream=Upstream(f"http://{host}", "fc-upstream-secret"))
    ctx.follow_seconds = 0
    assert ready(ctx) == not_ready("upstream")


@pytest.mark.parametrize("how", ["unreachable", "frozen"])
def test_a_redis_that_does_not_answer_is_named(
    db: Database, how: str, request: pytest.FixtureRequest
) -> None:
    host = request.getfixturevalue("frozen") if how == "frozen" else f"127.0.0.1:{free_port()}"
    ctx = AppContext(db=db, limiter=limits.RedisLimiter(f"redis://{host}/0"))
    assert ready(ctx) == not_ready("redis")


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
                "database", "redis", "upstream"
            )
            assert client.get("/health/live").json() == {"success": True}
    finally:
        db.dispose()
