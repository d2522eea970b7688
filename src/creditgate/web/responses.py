"""Firecrawl envelopes, rendered with orjson."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(status: int = 200, headers: dict[str, str] | None = None, **fields: Any) -> JSON:
    return JSON({"success": True, **fields}, status_code=status, headers=headers)


def fail(
    status: int, error: str, headers: Mapping[str, str] | None = None, /, **extra: Any
) -> JSON:
    return JSON({"success": False, "error": error, **extra}, status_code=status, headers=headers)


class Relay(Response):
    """An answer relayed as its chunks come, each sent as soon as it is read.

    Starlette's StreamingResponse, under uvicorn (ASGI spec 2.3), runs every answer in a task
    group with a second task that waits for the client to leave: two tasks and a cancel scope
    per request, the largest share of anyio's time in a metered scrape's profile. Nothing here
    needs to know the client left: uvicorn drops what is sent after that, and the relay's
    producer (gateway/proxy.py's _Tee) reads its answer to the end and settles it either way,
    as it did when the watcher cancelled it."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status_code = status_code
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await _close(self.chunks)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """An iterator left before its end is closed now, so its cleanup runs in this task
    (not whenever the event loop finalizes it)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
