"""Pure ASGI checks around the whole application, before any route or handler runs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditgate.web.errors import on_unexpected


class AnswerUnexpected:
    """An unexpected exception is answered here with the envelope's 500, and goes no further.

    Starlette's outermost ServerErrorMiddleware would answer it too, but then re-raises it to
    the server, and uvicorn closes the connection of a request whose application raised: a
    client keeping its connection would see its next request fail. Only a failure after the
    answer began still goes up, since closing the connection is then the only way to tell.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await on_unexpected(Request(scope), exc)
            await response(scope, receive, send)
