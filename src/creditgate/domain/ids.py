"""Identifiers: UUIDv7 (time-ordered, so new rows land at the end of indexes)."""

from __future__ import annotations

import re
import secrets
import uuid

from creditgate.domain.instants import Instant, now


def new_id(at: Instant | None = None) -> str:
    millis = (now() if at is None else at) & ((1 << 48) - 1)
    value = (millis << 80) | (0x7 << 76) | (secrets.randbits(12) << 64)
    value |= (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def is_id(text: str) -> bool:
    """Has the form of an id (a UUID): a team's name never has (services/teams.py)."""
    return _ID.match(text) is not None
