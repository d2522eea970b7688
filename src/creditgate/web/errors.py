"""One boundary where failures become HTTP: each domain outcome has one status and envelope."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from creditgate.domain import errors
from creditgate.domain.errors import STATUS
from creditgate.storage.database import is_disk_full, is_unavailable
from creditgate.web.responses import fail

log = logging.getLogger("creditgate.http")

UNAUTHORIZED = "Unauthorized"
TOKEN_MISSING = "Unauthorized: Token missing"  # noqa: S105 (an error text)
INVALID_TOKEN = "Unauthorized: Invalid token"  # noqa: S105 (an error text)
DATABASE_UNAVAILABLE = "The database is unavailable. Please retry shortly."
DISK_FULL = "The database's disk is full: nothing was written. Please retry shortly."
DISK_FULL_RETRY_S = 30
DISK_FULL_UNREADY_S = 30.0  # after a write refused for a full disk, unready this long


def disk_full_lately(ctx: Any) -> bool:
    """Whether a write of this app (its AppContext) was refused for a full disk in the last
    DISK_FULL_UNREADY_S."""
    at = getattr(ctx, "disk_full_at", None)
    return at is not None and time.monotonic() - at < DISK_FULL_UNREADY_S


LOG_UNAVAILABLE_EVERY_SECONDS = 10.0
_unavailable_logged_at: float | None = None


class HTTPError(Exception):
    """A failure decided by the HTTP layer itself (auth, limits, body size)."""

    def __init__(
        self, status: int, error: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers
        self.extra = extra


def with_upgrade_url(text: str, upgrade_url: str | None) -> str:
    """A 402/429 text with the operator's upgrade page (CREDITGATE_UPGRADE_URL) in place of
    Firecrawl's; unchanged without one, or for any other text."""
    if upgrade_url is None:
        return text
    return text.replace(errors.FIRECRAWL_UPGRADE_URL, upgrade_url)


def _upgrade_url(request: Request) -> str | None:
    return getattr(getattr(request.app.state, "ctx", None), "upgrade_url", None)


def render_ledger_error(exc: errors.LedgerError, upgrade_url: str | None = None) -> Response:
    text = with_upgrade_url(exc.message, upgrade_url)
    return fail(STATUS[type(exc)], text, **exc.details)


async def on_ledger_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.LedgerError)
    return render_ledger_error(exc, _upgrade_url(request))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    text = with_upgrade_url(exc.error, _upgrade_url(request))
    return fail(exc.status, text, exc.headers, **exc.extra)


async def on_starlette_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    text = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, str(exc.detail))
    return fail(exc.status_code, text, exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    error_id = str(uuid.uuid4())
    log.exception("error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return fail(
        500, f"An error occurred. Please check your logs for more details. Error ID: {error_id}"
    )


async def on_database_error(request: Request, exc: Exception) -> Response:
    """A database that is down, frozen, timed out or locked is a 503 (retry shortly); any other
    database error is a bug, a 500. The outage is logged at most every few seconds."""
    global _unavailable_logged_at
    if is_disk_full(exc):  # named, so an operator's client and logs say what to fix
        ctx = getattr(request.app.state, "ctx", None)
        if not disk_full_lately(ctx):
            log.error(
                "the database's disk is full: %s %s refused", request.method, request.url.path
            )
        if ctx is not None:
            ctx.disk_full_at = time.monotonic()
        return fail(503, DISK_FULL, {"Retry-After": str(DISK_FULL_RETRY_S)})
    if not is_unavailable(exc):
        return await on_unexpected(request, exc)
    now = time.monotonic()
    if _unavailable_logged_at is None or now - _unavailable_logged_at >= (
        LOG_UNAVAILABLE_EVERY_SECONDS
    ):
        _unavailable_logged_at = now
        log.error(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            str(exc).strip().splitlines()[0] if str(exc).strip() else "",
        )
    return fail(503, DATABASE_UNAVAILABLE, {"Retry-After": "1"})
