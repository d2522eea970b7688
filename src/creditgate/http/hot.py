"""The hottest requests in one layer: they skip the stack around them.

Account reads: every Firecrawl account route is a GET of a fixed path. A request whose raw path
is exactly one of them (so it is canonical: the edge would let it through) and whose query holds
no NUL is answered here, by the route's own handler.

Gateway requests (with an upstream): a canonical raw path under /v1/ or /v2/ that no other
route of the app holds, with a method the gateway takes and no NUL in its query, goes straight
to the gateway's handler (gateway/proxy.py), which matches it against its route table as the
router would have sent it there.

Either way the answer gets what the layers between would have added: the request id, the
request's log line (requestlog.py) and metrics (metrics.py), the CORS header (edge.py), and the
application's exception handlers for any failure before the answer began (a failure after it
began cuts the connection, as AnswerUnexpected lets it). Everything else — another path or
spelling, another method (HEAD and OPTIONS included), a NUL — goes down the full stack
unchanged, which then answers exactly as before.

Starlette's router, its exception middleware and the three middlewares of the app each cost a
coroutine and a wrapped `send` per request: for an account read that is otherwise a dictionary
lookup (storage/snapshots.py) they were most of its time, and for a metered scrape they were
0.35-0.87 ms of CPU over a plain Starlette proxy (issue 20's profile).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.web import metrics
from creditgate.web.edge import Edge, is_canonical
from creditgate.web.metrics import UNMATCHED, outcome_of
from creditgate.web.requestlog import SCOPE_KEY, RequestFields, _emit, _request_id

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]

GATEWAY_PREFIXES = (b"/v1/", b"/v2/")


@dataclass(frozen=True)
class Gateway:
    """The gateway's handler, the methods it takes, and the paths under its prefixes that
    other routes hold (those go down the full stack)."""

    endpoint: Endpoint
    methods: frozenset[str]
    taken: frozenset[bytes]


class HotReads:
    """Pure ASGI, outermost: around Starlette's whole middleware stack (http/app.py)."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, Endpoint],
        handlers: Mapping[Any, Handler],
        origins: tuple[str, ...] = ("*",),
        gateway: Gateway | None = None,
    ) -> None:
        self.app = app
        self.routes = {path.encode(): (path, endpoint) for path, endpoint in routes.items()}
        self.handlers = handlers
        self.edge = Edge(app, origins)
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or b""
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            await self.app(scope, receive, send)
            return
        found = self.routes.get(raw)
        if found is not None and scope["method"] == "GET":
            await self._read(scope, receive, send, *found)
        elif found is None and self._is_gateways(raw, scope["method"]):
            assert self.gateway is not None
            await self._relay(scope, receive, send, self.gateway.endpoint)
        else:
            await self.app(scope, receive, send)

    def _is_gateways(self, raw: bytes, method: str) -> bool:
        gateway = self.gateway
        return (
            gateway is not None
            and raw[:4] in GATEWAY_PREFIXES
            and method in gateway.methods
            and raw not in gateway.taken
            and is_canonical(raw)
        )

    def _extra(self, scope: Scope, request_id: str) -> list[tuple[bytes, bytes]]:
        """The headers the skipped layers add: CORS (edge.py), then the request id."""
        extra = [(b"x-request-id", request_id.encode())]
        allow = self.edge.allowed_origin(scope)
        if allow is not None:
            extra.insert(0, (b"access-control-allow-origin", allow))
            if not self.edge.any_origin:
                extra.insert(1, (b"vary", b"Origin"))
        return extra

    async def _relay(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint) -> None:
        """A gateway request: its answer is whole or relayed as it comes (web/responses.py)."""
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[SCOPE_KEY] = logged = RequestFields()
        extra = self._extra(scope, request_id)
        status = 500
        counted = False

        def count() -> None:
            """Into the metrics once, before the last bytes leave (as requestlog.py counts)."""
            nonlocal counted
            if not counted:
                counted = True
                logged.route = logged.route or UNMATCHED
                logged.outcome = outcome_of(status, logged.outcome)
                seconds = time.perf_counter() - started
                metrics.observe_request(scope["method"], logged.route, status, logged.outcome,
                                        seconds)  # fmt: skip

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif not message.get("more_body"):
                count()
            await send(message)

        request = Request(scope, receive)
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:
                response = await self._handler(exc)(request, exc)
            await response(scope, receive, sending)
        finally:
            count()
            _emit(scope, logged, status, (time.perf_counter() - started) * 1000, request_id)

    async def _read(
        self, scope: Scope, receive: Receive, send: Send, route: str, endpoint: Endpoint
    ) -> None:
        """An account read: its answer is always whole (responses.py)."""
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[SCOPE_KEY] = logged = RequestFields(route=route)
        extra = self._extra(scope, request_id)
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
