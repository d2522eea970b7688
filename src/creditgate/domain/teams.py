"""Teams (the wallets) and their API keys, as the ledger sees them."""

from __future__ import annotations

from dataclasses import dataclass

from creditgate.domain.instants import Instant


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    plan_id: str
    anchor: Instant  # the instant the team's first billing period starts
    suspended: bool
    allow_overage: bool
    created_at: Instant
    granted_through: Instant | None  # start of the last period whose plan credits were granted
    next_rollover: Instant | None  # when a period starts or a grant expires next
    last_charge_at: Instant | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    team_id: str
    name: str
    hint: str
    cap: int | None  # credits per billing period this key may spend at most
    created_at: Instant
    revoked_at: Instant | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
