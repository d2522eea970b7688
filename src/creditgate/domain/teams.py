"""Teams (the wallets) and their API keys, as the ledger sees them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    # Key lifecycle (issue #11); defaults so positional construction of the first seven stays.
    expires_at: Instant | None = None  # from this instant the key is refused like a revoked one
    rpm: int | None = None  # its own requests per minute, beside the team's; None: none
    rotated_from: str | None = None  # the key this one replaced (key rotation)
    lineage: str | None = None  # the first key of its rotation chain; None: never rotated
    metadata: Mapping[str, Any] | None = None  # a small JSON object (domain/keys.py bounds it)
    last_used_at: Instant | None = None  # coalesced, at most a flush interval late

    @property
    def active(self) -> bool:
        """Not revoked (expiry aside: the ledger settles what an expired key held)."""
        return self.revoked_at is None

    def live_at(self, now: Instant) -> bool:
        """Accepted at `now`: not revoked and not expired (an expiry is exclusive)."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
