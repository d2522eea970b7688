"""A team's grants, entries, reservations and jobs, listed page by page with filters.

Each listing has a stable order (its time, then what makes a row unique: grants by start, entries
by occurrence, reservations and jobs by creation) and filters: a time range (`from` inclusive,
`to` exclusive, ISO 8601), a key, an entry's or grant's kind, a hold's or job's status. A cursor
names the listing and the filters it was made under: given to another listing, or with other
filters, it is refused (`Invalid cursor.`), never silently applied elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from creditgate.domain.book import EntryKind
from creditgate.domain.errors import InvalidInput
from creditgate.domain.grants import GRANT_KINDS
from creditgate.domain.instants import InvalidInstant, format_iso, parse_iso
from creditgate.domain.reservations import HoldStatus
from creditgate.services import pages
from creditgate.services.pages import Page
from creditgate.storage import entry_pages as store
from creditgate.storage import team_rows as teams
from creditgate.storage.database import Database
from creditgate.storage.entry_pages import Filters, View
from creditgate.storage.job_rows import JobStatus

Field = tuple[str, str, bool]  # (name on the wire, column, an instant)


@dataclass(frozen=True, slots=True)
class Listing:
    view: View
    fields: tuple[Field, ...]
    cursor_types: tuple[type, ...]  # of the order's columns
    kinds: tuple[str, ...] = ()  # the values `kind` (or `status`) may take
    filter_name: str | None = None  # "kind" or "status"


def wire(name: str, column: str, instant: bool = False) -> Field:
    return (name, column, instant)


KEY_FIELDS = (wire("keyId", "key_id"), wire("keyName", "key_name"))
GRANTS = Listing(
    store.GRANTS,
    (
        wire("id", "id"),
        wire("kind", "kind"),
        wire("credits", "amount"),
        wire("remaining", "remaining"),
        wire("expired", "expired_amount"),
        wire("startsAt", "starts_ms", True),
        wire("expiresAt", "expires_ms", True),
        wire("periodStart", "period_start_ms", True),
        wire("note", "note"),
        wire("createdAt", "created_ms", True),
        wire("expiredAt", "expired_ms", True),
    ),
    (int, str),
    GRANT_KINDS,
    "kind",
)
ENTRIES = Listing(
    store.ENTRIES,
    (
        wire("occurredAt", "occurred_ms", True),
        wire("recordedAt", "recorded_ms", True),
        wire("movementId", "movement_id"),
        wire("line", "line"),
        wire("kind", "kind"),
        wire("credits", "amount"),
        wire("grantId", "grant_id"),
        *KEY_FIELDS,
        wire("periodStart", "period_start_ms", True),
        wire("endpoint", "endpoint"),
        wire("apiVersion", "api_version"),
        wire("jobId", "job_id"),
        wire("reservationId", "reservation_id"),
        wire("target", "target"),
        wire("note", "note"),
    ),
    (int, str, int),
    tuple(str(k) for k in EntryKind),
    "kind",
)
RESERVATIONS = Listing(
    store.RESERVATIONS,
    (
        wire("id", "id"),
        *KEY_FIELDS,
        wire("credits", "amount"),
        wire("settled", "settled"),
        wire("status", "status"),
        wire("endpoint", "endpoint"),
        wire("apiVersion", "api_version"),
        wire("jobId", "job_id"),
        wire("target", "target"),
        wire("createdAt", "created_ms", True),
        wire("expiresAt", "expires_ms", True),
        wire("closedAt", "closed_ms", True),
        wire("slots", "slots"),
    ),
    (int, str),
    tuple(str(s) for s in HoldStatus),
    "status",
)
JOBS = Listing(
    store.JOBS,
    (
        wire("id", "id"),
        *KEY_FIELDS,
        wire("endpoint", "endpoint"),
        wire("status", "status"),
        wire("reservationId", "reservation_id"),
        wire("createdAt", "created_ms", True),
    ),
    (int, str),
    tuple(str(s) for s in JobStatus),
    "status",
)
LISTINGS = {"grants": GRANTS, "entries": ENTRIES, "reservations": RESERVATIONS, "jobs": JOBS}


def instant(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except InvalidInstant as exc:
        raise InvalidInput(f"{name}: {exc}", field=name) from exc


def filters(
    listing: Listing,
    start: str | None = None,
    end: str | None = None,
    key_id: str | None = None,
    kind: str | None = None,
) -> Filters:
    """The filters, checked: each fault names its parameter (from, to, keyId, kind, status)."""
    found = Filters(instant(start, "from"), instant(end, "to"), key_id, kind)
    if found.start is not None and found.end is not None and found.end <= found.start:
        raise InvalidInput("to: must be after from", field="to")
    if key_id is not None and listing.view.key is None:
        raise InvalidInput("keyId: this listing has no key", field="keyId")
    if kind is not None and kind not in listing.kinds:
        name = listing.filter_name or "kind"
        raise InvalidInput(f"{name}: must be one of {', '.join(listing.kinds)}", field=name)
    return found


def as_json(listing: Listing, rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as the admin API's objects, fields named as on the wire."""
    names = [name for name, _c, _i in listing.fields]
    return [dict(zip(names, values, strict=True)) for values in as_values(listing, rows)]


def as_values(listing: Listing, rows: list[Any]) -> list[list[Any]]:
    """Each row's fields in the listing's order, instants as ISO 8601 (format_iso's text, made
    faster for the many rows of an export: each second's text is made once per call)."""
    if not rows:
        return []
    fields = rows[0]._fields
    where = [(fields.index(column), is_instant) for _n, column, is_instant in listing.fields]
    seconds: dict[int, str] = {}  # at most 3 a row: bounded by the chunk
    out = []
    for row in rows:
        values = []
        for index, is_instant in where:
            value = row[index]
            if is_instant and value is not None:
                second, ms = divmod(value, 1000)
                prefix = seconds.get(second)
                if prefix is None:
                    prefix = seconds[second] = format_iso(second * 1000)[:-4]
                value = f"{prefix}{ms:03d}Z"
            values.append(value)
        out.append(values)
    return out


def _cursor_kind(listing: Listing, found: Filters) -> str:
    """The listing and its filters: a cursor is valid for exactly this pair."""
    said = repr((found.start, found.end, found.key_id, found.kind)).encode()
    return f"{listing.view.name}:{hashlib.sha256(said).hexdigest()[:16]}"


def require_team(db: Database, team_id: str) -> None:
    with db.read() as conn:
        teams.require_team(conn, team_id)


def page(
    db: Database,
    listing: Listing,
    team_id: str,
    found: Filters,
    limit: int = pages.DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[dict[str, Any]]:
    """One page of the listing, `limit` rows from `cursor`, as JSON objects."""
    pages.check_limit(limit)
    kind = _cursor_kind(listing, found)
    after = None if cursor is None else pages.decode_cursor(kind, cursor, *listing.cursor_types)
    require_team(db, team_id)
    with db.read() as conn:
        got = store.rows(conn, listing.view, team_id, found, after, limit + 1)
    order = listing.view.order
    position: Callable[[Any], str] = lambda r: pages.encode_cursor(  # noqa: E731
        kind, *(getattr(r, c) for c in order)
    )
    raw = pages.page(got, limit, position)
    return Page(as_json(listing, raw.items), raw.cursor)


def chunks(
    db: Database, view: View, team_id: str, found: Filters, size: int
) -> Iterator[list[Any]]:
    """Every row of the view under the filters, `size` at a time, each chunk its own short
    read starting after the last row of the one before (constant memory, any row count)."""
    after: list[Any] | None = None
    while True:
        with db.read() as conn:
            got = store.rows(conn, view, team_id, found, after, size)
        if not got:
            return
        yield got
        if len(got) < size:
            return
        after = [getattr(got[-1], c) for c in view.order]


def count(db: Database, view: View, team_id: str, found: Filters) -> int:
    with db.read() as conn:
        return store.count(conn, view, team_id, found)
