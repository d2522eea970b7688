"""The ways a ledger operation can fail, as a closed set of named outcomes.

Each carries what a client needs to act on it, and has one status (STATUS, with a test that the
mapping is complete): the HTTP status it is answered with (web/errors.py), which the CLI's
`--json` reports as its code too.
"""

from __future__ import annotations

from typing import Any

# Where Firecrawl's 402 and 429 texts send a client for a bigger plan, byte for byte as
# Firecrawl writes them (docs/firecrawl-api.md §1). An operator names their own page with
# CREDITGATE_UPGRADE_URL; the HTTP boundary puts it in place of this one (web/errors.py).
FIRECRAWL_UPGRADE_URL = "https://firecrawl.dev/pricing"


class LedgerError(Exception):
    """Base of every expected failure. Anything else is a bug and becomes a 500."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(LedgerError):
    """The request is malformed or out of range; nothing was changed."""


class NotFound(LedgerError):
    """A team, key, plan or grant the request names does not exist."""


class Conflict(LedgerError):
    """The request contradicts existing state (a duplicate name, a revoked key reused)."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before with different content."""


class InsufficientCredits(LedgerError):
    """The amount does not fit the team's available credits or the key's cap."""

    def __init__(self, required: int, remaining: int, reason: str = "team") -> None:
        super().__init__(
            "Insufficient credits to perform this request. For more credits, you can upgrade "
            f"your plan at {FIRECRAWL_UPGRADE_URL} or try changing the request limit to a "
            "lower value.",
            requiredCredits=required,
            remainingCredits=remaining,
            limitedBy=reason,
        )
        self.required = required
        self.remaining = remaining
        self.reason = reason


class TeamSuspended(LedgerError):
    """An operator suspended the team: its keys are refused, its history is kept."""

    def __init__(self) -> None:
        super().__init__("Unauthorized: This account has been banned.")


class NoBalance(LedgerError):
    """The team has never been granted any credit, so it has no balance record."""


class ConcurrencyLimited(LedgerError):
    """Every slot of the team's plan concurrency is taken: as many pages are in flight as its
    plan allows (domain/concurrency.py)."""

    def __init__(self, running: int, limit: int) -> None:
        super().__init__(
            f"Concurrency limit reached: {running} of {limit} concurrent pages are in flight. "
            f"Retry when one finishes, or upgrade your plan at {FIRECRAWL_UPGRADE_URL}.",
            running=running,
            maxConcurrency=limit,
        )


# Every LedgerError subclass must appear here (tests/domain/test_errors.py checks it).
STATUS: dict[type[LedgerError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
    IdempotencyConflict: 409,
    InsufficientCredits: 402,
    TeamSuspended: 403,
    NoBalance: 404,
    ConcurrencyLimited: 429,
}
