"""Reads of a team's ledger rows for listing and export: one keyset query per chunk.

Every view has a stable total order (its time column, then what makes a row unique), so a page
or an export chunk starts strictly after the last row of the one before: no row is skipped or
repeated however many rows there are, and each chunk is one short read. The indexes these
orders need are the tables' (entries and reservations by team and time: migration 0010).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Table, and_, func, select, tuple_

from creditgate.storage.tables import (
    api_keys,
    entries,
    grants,
    jobs,
    reservations,
    usage_by_key,
    usage_by_key_day,
    usage_by_period,
)


@dataclass(frozen=True, slots=True)
class View:
    """A listable table: its order (the time column first), and the columns filters apply to."""

    name: str
    table: Table
    order: tuple[str, ...]
    key: str | None = None  # the key column (rows then carry the key's name too)
    kind: str | None = None  # the column `kind` or `status` filters on
    time: str | None = None  # the column `from` and `to` bound; None: the order's first

    @property
    def time_column(self) -> str:
        return self.time or self.order[0]


GRANTS = View("grants", grants, ("starts_ms", "id"), kind="kind")
ENTRIES = View("entries", entries, ("occurred_ms", "movement_id", "line"), "key_id", "kind")
RESERVATIONS = View("reservations", reservations, ("created_ms", "id"), "key_id", "status")
JOBS = View("jobs", jobs, ("created_ms", "id"), "key_id", "status")
USAGE_BY_PERIOD = View("usage-period", usage_by_period, ("period_start_ms",))
USAGE_BY_KEY = View("usage-key", usage_by_key, ("period_start_ms", "key_id"), "key_id")
USAGE_BY_DAY = View(
    "usage-day", usage_by_key_day, ("period_start_ms", "day_ms", "key_id"), "key_id", time="day_ms"
)


@dataclass(frozen=True, slots=True)
class Filters:
    """`start` inclusive, `end` exclusive, on the view's time column; None: unbounded."""

    start: int | None = None
    end: int | None = None
    key_id: str | None = None
    kind: str | None = None


def _where(view: View, team_id: str, filters: Filters) -> list[ColumnElement[bool]]:
    c = view.table.c
    time = c[view.time_column]
    found: list[ColumnElement[bool]] = [c.team_id == team_id]
    if filters.start is not None:
        found.append(time >= filters.start)
    if filters.end is not None:
        found.append(time < filters.end)
    if filters.key_id is not None:
        assert view.key is not None, view.name
        found.append(c[view.key] == filters.key_id)
    if filters.kind is not None:
        assert view.kind is not None, view.name
        found.append(c[view.kind] == filters.kind)
    return found


def rows(
    conn: Connection,
    view: View,
    team_id: str,
    filters: Filters,
    after: Sequence[Any] | None,
    limit: int,
    newest_first: bool = False,
) -> list[Any]:
    """Up to `limit` rows in the view's order, strictly after the sort key `after`; with the
    key's name as `key_name` when the view has a key column (None for a row without a key).
    `newest_first`: the last rows first instead (the same index, read backwards; no `after`)."""
    c = view.table.c
    order: list[Column[Any]] = [c[name] for name in view.order]
    where = _where(view, team_id, filters)
    if after is not None:
        where.append(tuple_(*order) > tuple_(*after))
    columns: list[Any] = list(view.table.c)
    source: Any = view.table
    if view.key is not None:
        columns.append(api_keys.c.name.label("key_name"))
        source = view.table.outerjoin(api_keys, api_keys.c.id == c[view.key])
    sort: list[Any] = order
    if newest_first:
        assert after is None, "newest_first reads from the end"
        sort = [column.desc() for column in order]
    query = select(*columns).select_from(source).where(and_(*where)).order_by(*sort).limit(limit)
    return list(conn.execute(query))


def count(conn: Connection, view: View, team_id: str, filters: Filters) -> int:
    """How many rows the view holds under these filters."""
    query = select(func.count()).select_from(view.table).where(*_where(view, team_id, filters))
    return int(conn.execute(query).scalar_one())
