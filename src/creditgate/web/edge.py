"""The edge: what every request meets first, before routing or authentication.

One spelling per request. The raw request target (as it arrived, still percent-encoded) must be
canonical, or the answer is 400 and nothing else happens: Express routes case-insensitively and
ignores a trailing slash, and HTTP clients resolve `.` and `..`, so any other spelling could be
matched and metered as one route here and reach another upstream. Canonical means: starts with
`/`; segments of unreserved characters only (letters, digits, `-`, `_`, `.` and `~`), none empty
and none `.` or `..`; no percent-encoding at all; no trailing slash. That refuses dot segments,
encoded dots, slashes and backslashes, `//`, `;` parameters, NUL and control bytes, and the
absolute form (`GET http://host/...`, which h11 passes on whole; httptools keeps only its path,
and the host is never used). A NUL in the query is refused too: every text the ledger looks up
would otherwise reach the database, and PostgreSQL cannot hold one (SQLite can).

CORS as Firecrawl answers it (the `cors` package's defaults): any OPTIONS is a preflight,
answered 204 without authentication, and every answer carries Access-Control-Allow-Origin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NON_CANONICAL = (
    "Bad Request: the request path must be canonical: no dot segments, percent-encoding, "
    "empty segments, ';' parameters, backslashes or trailing slash."
)
NUL_IN_URL = "Bad Request: the URL must not contain NUL characters."
_CANONICAL = re.compile(rb"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+|/")
ALLOW_METHODS = b"GET,HEAD,PUT,PATCH,POST,DELETE"


def is_canonical(raw_path: bytes) -> bool:
    # A segment never starts with a dot, so `.` and `..` cannot be one.
    return _CANONICAL.fullmatch(raw_path) is not None


class Edge:
    """Pure ASGI middleware (no per-request objects on the hot path)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str] = ("*",)) -> None:
        self.app = app
        self.any_origin = "*" in origins
        self.origins = frozenset(o.encode() for o in origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allow = self.allowed_origin(scope)
        if not is_canonical(scope.get("raw_path") or scope["path"].encode()):
            await _answer(send, 400, allow, {"success": False, "error": NON_CANONICAL})
            return
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:  # PostgreSQL cannot hold a NUL in text
            await _answer(send, 400, allow, {"success": False, "error": NUL_IN_URL})
            return
        if scope["method"] == "OPTIONS":
            await self._preflight(scope, send, allow)
            return
        if allow is None:
            await self.app(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", allow))
                if not self.any_origin:
                    headers.append((b"vary", b"Origin"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_cors)

    def allowed_origin(self, scope: Scope) -> bytes | None:
        if self.any_origin:
            return b"*"
        origin = _header(scope, b"origin")
        return origin if origin in self.origins else None

    async def _preflight(self, scope: Scope, send: Send, allow: bytes | None) -> None:
        headers = [(b"access-control-allow-methods", ALLOW_METHODS), (b"content-length", b"0")]
        requested = _header(scope, b"access-control-request-headers")
        if requested is not None:
            headers.append((b"access-control-allow-headers", requested))
            headers.append((b"vary", b"Access-Control-Request-Headers"))
        if allow is not None:
            headers.append((b"access-control-allow-origin", allow))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _answer(send: Send, status: int, allow: bytes | None, body: dict[str, object]) -> None:
    content = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    if allow is not None:
        headers.append((b"access-control-allow-origin", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
