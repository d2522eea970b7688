"""Reservations: credits held for work whose cost is not known yet."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from creditgate.domain.instants import Instant


class HoldStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    team_id: str
    key_id: str
    amount: int
    settled: int
    status: str
    endpoint: str | None
    api_version: str | None
    job_id: str | None
    target: str | None
    created_at: Instant
    expires_at: Instant
    closed_at: Instant | None
    owner: str | None = None  # the gateway process whose request holds it
    slots: int = 1  # pages it may have in flight upstream: its share of the plan's concurrency

    @property
    def holding(self) -> int:
        """Credits still set aside: what was reserved and not yet charged."""
        return max(self.amount - self.settled, 0) if self.status == HoldStatus.OPEN else 0
