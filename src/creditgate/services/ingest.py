"""Batch ingestion of charges: each event accepted, duplicate or rejected on its own.

Each event is a Charge operation of the ledger's one write path; a team's events are decided in
memory against its book and written in one transaction (ledger promise 9), and a rejected event
changes nothing, so the others are unaffected. The response is sent only after every
transaction committed; a retry of the whole batch with the same idempotency keys is always safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from creditgate.domain.errors import LedgerError
from creditgate.domain.instants import Instant
from creditgate.domain.teams import ApiKey
from creditgate.services import ledger
from creditgate.services.ledger import Charge, ChargeRequest, ChargeResult, find_key
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

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
    charges: list[tuple[int, Charge]] = []
    found: dict[str, ApiKey | LedgerError] = {}  # each key is looked up once
    with db.read() as conn:
        tx = Tx.of(conn)
        for index, event in enumerate(events):
            try:
                if isinstance(event, LedgerError):
                    raise event
                charge = Charge(event, now)  # its input checked before its key is looked up
                if event.key not in found:
                    try:
                        found[event.key] = find_key(tx, event.key)
                    except LedgerError as exc:
                        found[event.key] = exc
                key = found[event.key]
                if isinstance(key, LedgerError):
                    raise key
                charges.append((index, charge.for_key(key)))
            except LedgerError as exc:
                outcomes[index] = EventOutcome(index, "rejected", error=exc)
    done = ledger.run_all(db, [op for _, op in charges])
    for (index, _), outcome in zip(charges, done, strict=True):
        if isinstance(outcome, LedgerError):
            outcomes[index] = EventOutcome(index, "rejected", error=outcome)
        else:
            status: Status = "duplicate" if outcome.replayed else "accepted"
            outcomes[index] = EventOutcome(index, status, result=outcome)
    return [outcomes[i] for i in range(len(events))]
