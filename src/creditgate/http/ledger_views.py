"""Admin routes: a team's grants, entries, reservations and jobs page by page, and its ledger or
usage exported as CSV or NDJSON (streamed). http/admin.py authenticates and checks the query's
names (QUERY below) before these handlers run; they check the values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from creditgate.domain.errors import InvalidInput
from creditgate.services import export, ledger_views, pages
from creditgate.services.ledger_views import Listing
from creditgate.web.context import AppContext, blocking, chunks
from creditgate.web.responses import ok

Handler = Callable[[Request, AppContext], Awaitable[Response]]
TEAM = "/admin/teams/{team_id}"
FILTERS = {
    "grants": ("from", "to", "kind"),
    "entries": ("from", "to", "keyId", "kind"),
    "reservations": ("from", "to", "keyId", "status"),
    "jobs": ("from", "to", "keyId", "status"),
}
EXPORT_QUERY = ("what", "by", "format", "from", "to")


def _bad(exc: InvalidInput) -> InvalidInput:
    """The admin API's spelling of a faulty parameter: `Bad Request: <name>: ...`."""
    if exc.details.get("field") in (None, "cursor"):
        return exc
    return InvalidInput(f"Bad Request: {exc.message}", **exc.details)


def _limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return pages.DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= pages.MAX_LIMIT):
        raise InvalidInput(
            f"Bad Request: limit: must be an integer from 1 to {pages.MAX_LIMIT}", field="limit"
        )
    return int(text)


def _lister(listing: Listing) -> Handler:
    async def handler(request: Request, ctx: AppContext) -> Response:
        q = request.query_params
        kind = q.get(listing.filter_name) if listing.filter_name else None
        try:
            found = ledger_views.filters(listing, q.get("from"), q.get("to"), q.get("keyId"), kind)
        except InvalidInput as exc:
            raise _bad(exc) from None
        got = await blocking(
            ledger_views.page,
            ctx.db,
            listing,
            request.path_params["team_id"],
            found,
            _limit(request),
            q.get("cursor"),
        )
        return ok(data=got.items, cursor=got.cursor, hasMore=got.cursor is not None)

    return handler


async def export_ledger(request: Request, ctx: AppContext) -> Response:
    q = request.query_params
    team_id = request.path_params["team_id"]
    try:
        chosen = await blocking(
            export.prepare,
            ctx.db,
            team_id,
            q.get("what"),
            q.get("by"),
            q.get("format"),
            q.get("from"),
            q.get("to"),
        )
    except InvalidInput as exc:
        raise _bad(exc) from None
    body: Iterator[bytes] = export.stream(ctx.db, chosen)
    return StreamingResponse(
        # each chunk read off the event loop, within the database's deadline (a frozen server:
        # the download is cut short, its status already sent)
        chunks(ctx.db, body),
        media_type=chosen.media_type,
        headers={"Content-Disposition": f'attachment; filename="{chosen.filename}"'},
    )


QUERY: dict[tuple[str, str], tuple[str, ...]] = {
    **{
        ("GET", f"{TEAM}/{name}"): (*filters, "limit", "cursor")
        for name, filters in FILTERS.items()
    },
    ("GET", f"{TEAM}/export"): EXPORT_QUERY,
}
ROUTES: list[tuple[str, str, Handler, str]] = [
    (
        "GET",
        f"{TEAM}/grants",
        _lister(ledger_views.GRANTS),
        "A team's grants by start, then id (?from=&to=&kind=, pages)",
    ),
    (
        "GET",
        f"{TEAM}/entries",
        _lister(ledger_views.ENTRIES),
        "A team's ledger entries by occurrence, then movement and line "
        "(?from=&to=&keyId=&kind=, pages)",
    ),
    (
        "GET",
        f"{TEAM}/reservations",
        _lister(ledger_views.RESERVATIONS),
        "A team's reservations by creation, then id (?from=&to=&keyId=&status=, pages)",
    ),
    (
        "GET",
        f"{TEAM}/jobs",
        _lister(ledger_views.JOBS),
        "A team's upstream jobs by creation, then id (?from=&to=&keyId=&status=, pages)",
    ),
    (
        "GET",
        f"{TEAM}/export",
        export_ledger,
        "Stream a team's entries, or its usage by period, key or day, as CSV or NDJSON "
        "(?what=entries|usage&by=period|key|day&format=csv|ndjson&from=&to=)",
    ),
]


def routes(authenticated: Callable[[Request], Awaitable[AppContext]]) -> list[Any]:
    """ROUTES as http/admin.py's table takes them: each handler after `authenticated`."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(request, await authenticated(request))

        return endpoint

    return [(method, path, wrap(handler), summary) for method, path, handler, summary in ROUTES]
