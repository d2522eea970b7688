"""Batch ingestion of charges: each event accepted, duplicate or rejected on its own.

Events are grouped by team and each team's events are written in one transaction (ledger promise
9), each event inside a savepoint so one rejected event leaves the others intact. The response is
sent only after every transaction committed; a retry of the whole batch with the same idempotency
keys is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creditgate.domain.errors import LedgerError, NotFound
from creditgate.domain.instants import Instant
from creditgate.domain.teams import ApiKey
from creditgate.services.keys import resolve_key
from creditgate.services.ledger import (
    ChargeRequest,
    ChargeResult,
    charge_in,
    check_amount,
    check_idempotency_key,
    check_texts,
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
                check_amount(event.credits)
                check_texts(
                    endpoint=event.endpoint,
                    api_version=event.api_version,
                    job_id=event.job_id,
                    target=event.target,
                )
                check_idempotency_key(event.idempotency_key)
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
    for group in pending.values():
        with db.write() as conn:
            for index, key, event in group:
                try:
                    with conn.begin_nested():
                        result = charge_in(conn, key, event, now)
                except LedgerError as exc:
                    outcomes[index] = EventOutcome(index, "rejected", error=exc)
                    continue
                status: Status = "duplicate" if result.replayed else "accepted"
                outcomes[index] = EventOutcome(index, status, result=result)
    return [outcomes[i] for i in range(len(events))]
