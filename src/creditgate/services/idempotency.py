"""Idempotency keys: the same key and content replays the first result; other content is 409.

The key is stored in the same transaction as the write it guards, after the team's row lock is
taken, so it is "seen" only once that write has committed, and of two concurrent twins the second
waits for the lock and then reads the winner's result.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection

from creditgate.domain.errors import IdempotencyConflict
from creditgate.domain.instants import Instant
from creditgate.storage import ledger
from creditgate.storage.ledger import IdempotencyRecord


def request_hash(operation: str, content: dict[str, Any]) -> str:
    canonical = json.dumps([operation, content], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(conn: Connection, team_id: str, key: str | None, digest: str) -> dict[str, Any] | None:
    """The stored result for `key`, or None if the key is new."""
    if key is None:
        return None
    return check(ledger.get_idempotency(conn, team_id, key), key, digest)


def check(record: IdempotencyRecord | None, key: str, digest: str) -> dict[str, Any] | None:
    """The first result if `record` holds the same content; 409 if other content; else None."""
    if record is None:
        return None
    if record.request_hash != digest:
        raise IdempotencyConflict(
            f"Idempotency key {key!r} was already used with different content.",
            idempotencyKey=key,
        )
    result: dict[str, Any] = json.loads(record.response)
    return result


def make_record(digest: str, movement_id: str, result: dict[str, Any]) -> IdempotencyRecord:
    return IdempotencyRecord(digest, movement_id, json.dumps(result, sort_keys=True))


def remember(
    conn: Connection,
    team_id: str,
    key: str | None,
    digest: str,
    movement_id: str,
    result: dict[str, Any],
    now: Instant,
) -> None:
    if key is not None:
        ledger.insert_idempotency(conn, team_id, key, make_record(digest, movement_id, result), now)
