"""Listings in pages: a stable order, and an opaque cursor naming where the next page starts."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from creditgate.domain.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
INVALID_CURSOR = "Invalid cursor."


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None  # where the next page starts; None: this is the last page


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return limit


def encode_cursor(kind: str, *position: int | str) -> str:
    """`position`: the sort key of the last row of a page; `kind` keeps each listing's cursors
    to itself."""
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *types: type) -> list[int | str]:
    """The sort key a cursor of this listing holds, each part of the type given."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw)
    except (ValueError, binascii.Error) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidInput(INVALID_CURSOR, field="cursor") from exc
    if (
        not isinstance(found, list)
        or len(found) != 1 + len(types)
        or found[0] != kind
        or any(type(part) is not want for part, want in zip(found[1:], types, strict=True))
    ):
        raise InvalidInput(INVALID_CURSOR, field="cursor")
    position: list[int | str] = found[1:]
    return position


def page(rows: list[T], limit: int, position: Callable[[T], str]) -> Page[T]:
    """A page from `limit + 1` rows: the extra row only says that more follow."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items, position(items[-1]) if more and items else None)


def every(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """All the rows of a listing, page after page."""
    rows: list[T] = []
    cursor: str | None = None
    while True:
        found = fetch(cursor)
        rows.extend(found.items)
        if found.cursor is None:
            return rows
        cursor = found.cursor
