"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditgate.domain.errors import LedgerError
from creditgate.http import account, admin, openapi
from creditgate.http.context import AppContext, blocking
from creditgate.http.errors import (
    HTTPError,
    on_http_error,
    on_ledger_error,
    on_starlette_error,
    on_unexpected,
)
from creditgate.http.responses import ok
from creditgate.services import reservations

log = logging.getLogger("creditgate.http")


async def health(_request: Request) -> Response:
    return ok()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Release expired reservations in the background, so holds end on time without traffic."""
    ctx: AppContext = app.state.ctx
    sweeper = asyncio.create_task(_sweep(ctx)) if ctx.sweep_seconds > 0 else None
    try:
        yield
    finally:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


async def _sweep(ctx: AppContext) -> None:
    while True:
        await asyncio.sleep(ctx.sweep_seconds)
        try:
            await blocking(reservations.expire_due, ctx.db, ctx.clock())
        except Exception:  # a sweep failing must not stop the next one
            log.exception("reservation sweep failed")


def create_app(ctx: AppContext) -> Starlette:
    routes = [
        *account.routes(),
        *admin.routes(),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            LedgerError: on_ledger_error,
            HTTPError: on_http_error,
            HTTPException: on_starlette_error,
            Exception: on_unexpected,
        },
    )
    app.state.ctx = ctx
    return app
