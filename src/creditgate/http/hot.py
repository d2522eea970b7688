"""The account routes' reads in one layer: the hottest requests skip the stack around them.

Every Firecrawl account route is a GET of a fixed path. A request whose raw path is exactly one
of them (so it is canonical: the edge would let it through) and whose query holds no NUL is
answered here, by the route's own handler, with what the layers between would have added: the
request id, the request's log line (requestlog.py) and metrics (metrics.py), the CORS header
(edge.py), and the
application's exception handlers for any failure. Everything else — another path or spelling,
another method (HEAD and OPTIONS included), a NUL — goes down the full stack unchanged, which
then answers exactly as before.

Starlette's router, its exception middleware and the three middlewares of the app each cost a
coroutine and a wrapped `send` per request; for a read that is otherwise a dictionary lookup
(storage/snapshots.py) they were most of its time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from creditgate.web import metrics
from creditgate.web.edge import Edge
from creditgate.web.metrics import outcome_of
from creditgate.web.requestlog import SCOPE_KEY, RequestFields, _emit, _request_id

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotReads:
    """Pure ASGI, outermost: around Starlette's whole middleware stack (http/app.py)."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, Endpoint],
        handlers: Mapping[Any, Handler],
        origins: tuple[str, ...] = ("*",),
    ) -> None:
        self.app = app
        self.routes = {path.encode(): (path, endpoint) for path, endpoint in routes.items()}
        self.handlers = handlers
        self.edge = Edge(app, origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.routes.get(scope.get("raw_path") or b"") if scope["type"] == "http" else None
        query: bytes = scope.get("query_string", b"")
        if found is None or scope["method"] != "GET" or b"%00" in query or b"\x00" in query:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route, endpoint = found
        request_id = _request_id(scope)
        scope[SCOPE_KEY] = logged = RequestFields(route=route)
        extra = [(b"x-request-id", request_id.encode())]
        allow = self.edge.allowed_origin(scope)
        if allow is not None:
            extra.insert(0, (b"access-control-allow-origin", allow))
            if not self.edge.any_origin:
                extra.insert(1, (b"vary", b"Origin"))
        status = 500
        request = Request(scope, receive)
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:
                response = await self._handler(exc)(request, exc)
            # Every answer here is a whole body (responses.py): sent as Response.__call__
            # would, with the headers of the skipped layers after its own.
            status = response.status_code
            headers = [*response.raw_headers, *extra]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            # Counted before the last bytes go out, as the request-log middleware counts.
            logged.outcome = outcome_of(status, logged.outcome)
            seconds = time.perf_counter() - started
            metrics.observe_request("GET", route, status, logged.outcome, seconds)
            await send({"type": "http.response.body", "body": response.body})
            if response.background is not None:
                await response.background()
        finally:
            _emit(scope, logged, status, (time.perf_counter() - started) * 1000, request_id)

    def _handler(self, exc: Exception) -> Handler:
        for cls in type(exc).__mro__:
            if cls in self.handlers:
                return self.handlers[cls]
        raise exc  # pragma: no cover (Exception itself has a handler)
