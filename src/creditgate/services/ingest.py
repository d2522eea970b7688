"""Batch ingestion of charges: each event accepted, duplicate or rejected on its own.

Events are grouped by team and each team's events are decided in memory against the team's
book and written in one transaction (ledger promise 9); a rejected event changes nothing, so
the others are unaffected. The response is
sent only after every transaction committed; a retry of the whole batch with the same idempotency
keys is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creditgate.domain.errors import LedgerError, NotFound
from creditgate.domain.instants import Instant
from creditgate.domain.teams import ApiKey
from creditgate.services.book import TeamBook
from creditgate.services.keys import resolve_key
from creditgate.services.ledger import (
    ChargeRequest,
    ChargeResult,
    charge_in,
    check_charge,
)
from creditgate.storage.database import Database

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    index: int
    status: Status
    result: ChargeResult | None = None
    error: LedgerError | None = None


def charge_batch(
    db: Database, events: list[ChargeRequest | LedgerError], now: Instant
) -> list[EventOutcome]:
    outcomes: dict[int, EventOutcome] = {}
    pending: dict[str, list[tuple[int, ApiKey, ChargeRequest]]] = {}
    with db.read() as conn:
        found: dict[str, ApiKey | LedgerError] = {}
        for index, event in enumerate(events):
            if isinstance(event, LedgerError):
                outcomes[index] = EventOutcome(index, "rejected", error=event)
                continue
            try:
                check_charge(event)
            except LedgerError as exc:
                outcomes[index] = EventOutcome(index, "rejected", error=exc)
                continue
            if event.key not in found:
                try:
                    found[event.key] = resolve_key(conn, event.key)[0]
                except NotFound as exc:
                    found[event.key] = exc
            key = found[event.key]
            if isinstance(key, LedgerError):
                outcomes[index] = EventOutcome(index, "rejected", error=key)
            else:
                pending.setdefault(key.team_id, []).append((index, key, event))
    for team_id, group in pending.items():
        with db.write() as conn:
            book = TeamBook.open(conn, team_id, now)
            book.prefetch([e.idempotency_key for _, _, e in group if e.idempotency_key])
            for index, key, event in group:
                try:
                    result = charge_in(book, key, event)
                except LedgerError as exc:
                    outcomes[index] = EventOutcome(index, "rejected", error=exc)
                    continue
                status: Status = "duplicate" if result.replayed else "accepted"
                outcomes[index] = EventOutcome(index, status, result=result)
            book.flush()
    return [outcomes[i] for i in range(len(events))]
