"""Credit leases: a gateway process admits a key's synchronous requests in memory against
credits and page slots it already holds in the ledger.

A lease is a reservation (domain/reservations.py) whose `endpoint` is `LEASE`, owned by one
gateway process, for one (team, key): `credits` credits and `slots` page slots, debited from the
team's available balance and counted against the key's cap when it is taken, like any hold — so
no number of processes can overdraw the team or the key's cap, and the plan's concurrency counts
its slots with every other open hold's. A request is admitted against it in memory (its
estimate, one slot); its exact charge is then drawn from it, in the same group-committed
transaction as the other requests of the team that finished meanwhile (services/writer.py).

This module is the arithmetic of one lease in memory and how leases are sized; the ledger
operations and the per-process manager are services/leases.py.

Sizing is adaptive: a lease is sized to last `REFILL_MS` at the rate its predecessor saw, and
never takes more than `1 / HEADROOM` of what the key may spend: a team near empty gets no lease
(its requests take a hold each, as without leases), so the credits other processes' leases keep
aside stay small beside what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

LEASE = "lease"  # a reservation with this endpoint is a lease

IDLE_MS = 1_000  # a lease nobody used for this long is given back (its credits and slots)
LIFE_MS = 2_000  # a lease admits for this long at most; then one sized afresh replaces it
REFILL_MS = 2_000  # a lease holds credits for this long at its predecessor's rate
HEADROOM = 4  # a lease takes at most this fraction (1/4) of what its key may spend
MIN_REQUESTS = 4  # a lease holds at least this many requests' estimates...
MAX_REQUESTS = 1_000  # ...and at most this many


@dataclass
class Lease:
    """One lease as its process sees it. `spent`: drawn (committed, or being committed);
    `admitted`: the estimates of the requests in flight on it."""

    id: str
    team_id: str
    key_id: str
    credits: int
    slots: int
    opened_ms: float  # monotonic
    used_ms: float
    spent: int = 0
    admitted: int = 0
    in_flight: int = 0
    draws: int = 0  # draws submitted and not answered yet
    admissions: int = 0
    peak: int = 0  # most requests in flight at once
    overflowed: bool = False  # a request found every slot taken
    admitting: bool = True  # False: retired (old, short of credits, closing): drains, then closes

    @property
    def free(self) -> int:
        return self.credits - self.spent - self.admitted

    @property
    def drained(self) -> bool:
        return self.in_flight == 0 and self.draws == 0

    def admit(self, cost: int, at_ms: float) -> bool:
        """Take `cost` credits and a slot for a request, if the lease has them."""
        if not self.admitting or self.free < cost:
            return False
        if self.in_flight >= self.slots:
            self.overflowed = True
            return False
        self.admitted += cost
        self.in_flight += 1
        self.admissions += 1
        self.peak = max(self.peak, self.in_flight)
        self.used_ms = at_ms
        return True

    def drawing(self, estimate: int, charged: int) -> None:
        """A request's exact charge is being drawn: its estimate becomes its charge."""
        self.admitted -= estimate
        self.spent += charged
        self.in_flight -= 1
        self.draws += 1

    def drawn(self) -> None:
        self.draws -= 1

    def dropped(self, estimate: int) -> None:
        """A request that is not charged (its work did not complete): estimate and slot back."""
        self.admitted -= estimate
        self.in_flight -= 1

    def rate(self, at_ms: float) -> float:
        """Admissions per second over its life."""
        return self.admissions * 1000 / max(at_ms - self.opened_ms, 100.0)


def wanted_credits(cost: int, rate_per_s: float) -> int:
    """What a new lease asks for: `REFILL_MS` of requests at `rate_per_s`, within bounds."""
    requests = int(rate_per_s * REFILL_MS / 1000) + 1
    return max(cost, 1) * min(max(requests, MIN_REQUESTS), MAX_REQUESTS)


def granted_credits(wanted: int, spendable: int, cost: int) -> int:
    """What a lease gets when the key may spend `spendable`: at most a `HEADROOM`th of it;
    0 (no lease: a hold per request) when that is less than one request's `cost`."""
    granted = min(wanted, spendable // HEADROOM)
    return granted if granted >= max(cost, 1) else 0


def wanted_slots(previous: Lease | None, in_flight: int, concurrency: int) -> int:
    """A new lease's slots: as many requests as its predecessor had in flight at once (twice
    that if it ran out of slots), and one more than are in flight now; at most the plan's."""
    peak = 1 if previous is None else previous.peak * (2 if previous.overflowed else 1)
    return max(min(max(peak, in_flight + 1), concurrency), 1)
