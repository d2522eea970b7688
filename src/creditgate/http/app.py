"""The ASGI application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from creditgate.domain.errors import LedgerError
from creditgate.http import account, admin, openapi
from creditgate.http.context import AppContext
from creditgate.http.errors import (
    HTTPError,
    on_http_error,
    on_ledger_error,
    on_starlette_error,
    on_unexpected,
)
from creditgate.http.responses import ok


async def health(_request: Request) -> Response:
    return ok()


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
        exception_handlers={
            LedgerError: on_ledger_error,
            HTTPError: on_http_error,
            HTTPException: on_starlette_error,
            Exception: on_unexpected,
        },
    )
    app.state.ctx = ctx
    return app
