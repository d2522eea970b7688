"""A team's ledger or usage as CSV or NDJSON, streamed in keyset chunks: constant memory.

    what=entries            every entry line, in time order (services/ledger_views.py ENTRIES)
    what=usage, by=period   credits used per billing period (the usage_by_period rollup)
    what=usage, by=key      per period and key, the key named (usage_by_key)
    what=usage, by=day      per period, UTC day and key (usage_by_key_day)

`from` (inclusive) and `to` (exclusive) bound the entries' occurrence, the periods' start (by
period and key) or the day (by day). CSV has a header row and is written by the csv module
(RFC 4180 quoting, CRLF line ends; a text cell a spreadsheet would run as a formula is prefixed
with `'`, OWASP's rule); NDJSON is one JSON object a line. Instants are ISO 8601
UTC, credits integers, a missing value an empty CSV field or a JSON null. The rows of a chunk
are read in one short transaction each: an export runs beside the writes, never blocks them, and
sees each row once in order (an entry backdated behind the export's position while it runs is
not in it).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from creditgate.domain.errors import InvalidInput
from creditgate.services import ledger_views
from creditgate.services.ledger_views import Listing, as_json, as_values, wire
from creditgate.storage import entry_pages as store
from creditgate.storage.database import Database
from creditgate.storage.entry_pages import Filters

WHATS = ("entries", "usage")
BYS = ("period", "key", "day")
FORMATS = ("csv", "ndjson")
CHUNK_ROWS = 5_000
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}

USAGE: dict[str, Listing] = {
    "period": Listing(
        store.USAGE_BY_PERIOD,
        (wire("periodStart", "period_start_ms", True), wire("credits", "credits")),
        (int,),
    ),
    "key": Listing(
        store.USAGE_BY_KEY,
        (
            wire("periodStart", "period_start_ms", True),
            wire("keyId", "key_id"),
            wire("keyName", "key_name"),
            wire("credits", "credits"),
        ),
        (int, str),
    ),
    "day": Listing(
        store.USAGE_BY_DAY,
        (
            wire("periodStart", "period_start_ms", True),
            wire("day", "day_ms", True),
            wire("keyId", "key_id"),
            wire("keyName", "key_name"),
            wire("credits", "credits"),
            wire("lastUsedAt", "last_ms", True),
        ),
        (int, int, str),
    ),
}


@dataclass(frozen=True, slots=True)
class Export:
    team_id: str
    listing: Listing
    filters: Filters
    format: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        name = self.listing.view.name
        return f"{self.team_id}-{name}.{self.format}"


def prepare(
    db: Database,
    team_id: str,
    what: str | None,
    by: str | None = None,
    fmt: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Export:
    """The export asked for, every parameter checked (each fault names it) and the team found,
    before a byte is written."""
    if what not in WHATS:
        raise InvalidInput(f"what: must be one of {', '.join(WHATS)}", field="what")
    fmt = fmt or "csv"
    if fmt not in FORMATS:
        raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}", field="format")
    if what == "entries":
        if by is not None:
            raise InvalidInput("by: only for what=usage", field="by")
        listing = ledger_views.ENTRIES
    else:
        by = by or "period"
        if by not in BYS:
            raise InvalidInput(f"by: must be one of {', '.join(BYS)}", field="by")
        listing = USAGE[by]
    found = ledger_views.filters(listing, start, end)
    ledger_views.require_team(db, team_id)
    return Export(team_id, listing, found, fmt)


def count(db: Database, export: Export) -> int:
    """How many rows the export will hold (one COUNT; for a progress bar)."""
    return ledger_views.count(db, export.listing.view, export.team_id, export.filters)


def header(export: Export) -> bytes:
    if export.format != "csv":
        return b""
    return _csv([[name for name, _c, _i in export.listing.fields]])


# A text cell starting with one of these is run as a formula by spreadsheets (OWASP, "CSV
# Injection"): `=IMPORTXML(...)` in a key name or target would fetch or leak when opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defused(cell: Any) -> Any:
    """A text cell a spreadsheet reads as text: a formula-starting one gets a leading `'`
    (OWASP's rule; shown, not run). Numbers are left as they are (-5 stays a number)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _csv(rows: list[list[Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerows([defused(cell) for cell in row] for row in rows)
    return text.getvalue().encode()


def encode(export: Export, rows: list[Any]) -> bytes:
    """Rows of one chunk, in the export's format."""
    if export.format == "ndjson":
        return b"".join(orjson.dumps(o) + b"\n" for o in as_json(export.listing, rows))
    return _csv(as_values(export.listing, rows))  # the csv module writes None as an empty field


def batches(db: Database, export: Export, size: int = CHUNK_ROWS) -> Iterator[list[Any]]:
    """The export's rows, `size` at a time (each a short read of its own)."""
    view = export.listing.view
    return ledger_views.chunks(db, view, export.team_id, export.filters, size)


def stream(db: Database, export: Export, size: int = CHUNK_ROWS) -> Iterator[bytes]:
    """The whole export, a chunk of bytes at a time: the header, then each chunk of rows."""
    first = header(export)
    if first:
        yield first
    for rows in batches(db, export, size):
        yield encode(export, rows)
