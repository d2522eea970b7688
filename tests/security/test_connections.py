"""Errors are answered in the envelope on a connection that stays open for the next request."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from creditgate.app.asgi import create_app
from creditgate.services import teams
from creditgate.web.context import AppContext
from tests.conftest import ADMIN_TOKEN
from tests.helpers import bearer
from tests.server import app_in_thread

ADMIN = bearer(ADMIN_TOKEN)


def test_every_error_is_an_envelope_and_the_connection_serves_the_next_request(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.max_body_bytes = 100
    app = create_app(ctx)
    ports: list[int] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ports.append(scope["client"][1])  # the client's port: one connection, one port
        await app(scope, receive, send)

    def broken(*_args: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(teams, "page_teams", broken)
    cases: list[tuple[str, str, dict[str, str], bytes, int, str | None]] = [
        ("POST", "/admin/teams", ADMIN, b'{"name": "' + b"x" * 200 + b'"}', 413, None),
        ("POST", "/admin/teams", ADMIN, b'{"name": ', 400, None),
        ("POST", "/nowhere", ADMIN, b'{"name": "a"}', 404, "Not Found"),
        ("POST", "/admin/teams", {}, b'{"name": "a"}', 401, "Unauthorized"),
        ("PUT", "/health", {}, b"{}", 405, "Method Not Allowed"),
        ("POST", "/admin/teams?x=%00", ADMIN, b'{"name": "a"}', 400, None),
        ("GET", "/admin/teams", ADMIN, b"", 500, None),
    ]
    with (
        app_in_thread(recording) as url,
        httpx.Client(base_url=url, limits=httpx.Limits(max_connections=1)) as client,
    ):
        for method, path, headers, body, status, error in cases:
            response = client.request(method, path, headers=headers, content=body)
            assert response.status_code == status, (path, response.text)
            assert response.json()["success"] is False
            assert error is None or response.json()["error"] == error
            assert "close" not in response.headers.get("connection", ""), (status, path)
            assert client.get("/health").json() == {"success": True}, (status, path)
    assert len(ports) == 2 * len(cases)
    assert set(ports) == {ports[0]}, "every request came on the first connection"
