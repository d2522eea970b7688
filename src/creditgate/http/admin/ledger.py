"""The ledger on view: a team's grants, entries, reservations and jobs page by page, and its
ledger or usage exported as CSV or NDJSON (streamed). The query's names are checked before a
handler runs; the handlers check the values."""

from __future__ import annotations

from starlette.responses import StreamingResponse

from creditgate.domain.errors import InvalidInput
from creditgate.http.admin import query
from creditgate.http.admin.query import Param
from creditgate.http.admin.route import NAMED, AdminRoute, Call, Handler, Reply
from creditgate.services import export, ledger_views, wire
from creditgate.services.ledger_views import Listing
from creditgate.services.wire import Answer, ExportStream
from creditgate.web.context import blocking, chunks

TEAM = "/admin/teams/{team_id}"


def _bad(exc: InvalidInput) -> InvalidInput:
    """The admin API's spelling of a faulty parameter: `Bad Request: <name>: ...`."""
    if exc.details.get("field") in (None, "cursor"):
        return exc
    return InvalidInput(f"Bad Request: {exc.message}", **exc.details)


def _lister(listing: Listing, row: type[Answer]) -> Handler:
    async def handler(call: Call) -> Reply:
        kind = call.query(listing.filter_name) if listing.filter_name else None
        try:
            found = ledger_views.filters(
                listing, call.query("from"), call.query("to"), call.query("keyId"), kind
            )
        except InvalidInput as exc:
            raise _bad(exc) from None
        got = await blocking(
            ledger_views.page, call.ctx.db, listing, call.path("team_id"), found, *call.page()
        )
        return Reply([row(**item) for item in got.items], cursor=got.cursor)

    return handler


async def export_ledger(call: Call) -> Reply:
    db = call.ctx.db
    try:
        chosen = await blocking(
            export.prepare,
            db,
            call.path("team_id"),
            call.query("what"),
            call.query("by"),
            call.query("format"),
            call.query("from"),
            call.query("to"),
        )
    except InvalidInput as exc:
        raise _bad(exc) from None
    stream = StreamingResponse(
        # each chunk read off the event loop, within the database's deadline (a frozen server:
        # the download is cut short, its status already sent)
        chunks(db, export.stream(db, chosen)),
        media_type=chosen.media_type,
        headers={"Content-Disposition": f'attachment; filename="{chosen.filename}"'},
    )
    return Reply(stream)


def _listing(
    name: str,
    listing: Listing,
    row: type[Answer],
    filters: tuple[Param, ...],
    summary: str,
    operation_id: str,
) -> AdminRoute:
    return AdminRoute(
        "GET",
        f"{TEAM}/{name}",
        _lister(listing, row),
        summary,
        operation_id,
        row,
        many=True,
        query=(*filters, *query.PAGE),
        errors=NAMED,
    )


ROUTES = [
    _listing(
        "grants",
        ledger_views.GRANTS,
        wire.GrantRow,
        (query.FROM, query.TO, query.KIND),
        "A team's grants by start, then id (?from=&to=&kind=, pages)",
        "listGrants",
    ),
    _listing(
        "entries",
        ledger_views.ENTRIES,
        wire.EntryRow,
        (query.FROM, query.TO, query.KEY_ID, query.KIND),
        "A team's ledger entries by occurrence, then movement and line "
        "(?from=&to=&keyId=&kind=, pages)",
        "listEntries",
    ),
    _listing(
        "reservations",
        ledger_views.RESERVATIONS,
        wire.ReservationRow,
        (query.FROM, query.TO, query.KEY_ID, query.STATUS),
        "A team's reservations by creation, then id (?from=&to=&keyId=&status=, pages)",
        "listReservations",
    ),
    _listing(
        "jobs",
        ledger_views.JOBS,
        wire.JobRow,
        (query.FROM, query.TO, query.KEY_ID, query.STATUS),
        "A team's upstream jobs by creation, then id (?from=&to=&keyId=&status=, pages)",
        "listJobs",
    ),
    AdminRoute(
        "GET",
        f"{TEAM}/export",
        export_ledger,
        "Stream a team's entries, or its usage by period, key or day, as CSV or NDJSON "
        "(?what=entries|usage&by=period|key|day&format=csv|ndjson&from=&to=)",
        "exportLedger",
        ExportStream,
        query=(query.WHAT, query.BY, query.FORMAT, query.FROM, query.TO),
        errors=NAMED,
    ),
]
