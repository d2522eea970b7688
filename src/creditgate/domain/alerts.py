"""Alerts: thresholds on a team's (or a key's) credits, and the events they and other ledger
moments raise. A rule fires at most once per billing period, in the transaction of the charge
that makes it true (domain/book.py decides under the team's lock, so concurrency and retries
cannot fire it twice)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from creditgate.domain.instants import Instant

DEFAULT_PERCENTS = (80, 100)  # every new team's rules: 80% and 100% of its period's credits


class RuleKind(StrEnum):
    PERCENT = "percent"  # this percentage of the period's credits (or of the key's cap) used
    REMAINING = "remaining"  # no more than this many credits left


class EventType(StrEnum):
    THRESHOLD = "credits.threshold_crossed"
    KEY_CAP = "key.cap_reached"
    GRANTED = "credits.granted"
    HOLD_EXPIRED = "reservation.expired"
    PLAN_CHANGED = "plan.changed"
    TEST = "webhook.test"


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: str
    team_id: str
    key_id: str | None  # None: the team as a whole
    kind: RuleKind
    threshold: int
    created_at: Instant


def cap_rule_id(key_id: str) -> str:
    """The pseudo-rule of a key reaching its cap: fired once per period like a rule."""
    return f"cap:{key_id}"


def holds(rule: AlertRule, used: int, budget: int | None, remaining: int) -> bool:
    """Is the rule's condition true? `used` this period against `budget` (the period's credits,
    or the key's cap; None: nothing to take a percentage of), `remaining` credits left."""
    if rule.kind is RuleKind.REMAINING:
        return remaining <= rule.threshold
    return budget is not None and budget > 0 and used * 100 >= rule.threshold * budget


def check_rule(kind: object, threshold: object) -> tuple[RuleKind, int]:
    """A rule's kind and threshold as given by an operator, or ValueError saying why not."""
    try:
        parsed = RuleKind(str(kind))
    except ValueError:
        raise ValueError("kind must be percent or remaining") from None
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        raise ValueError("threshold must be a whole number")
    if parsed is RuleKind.PERCENT and not 1 <= threshold <= 1000:
        raise ValueError("a percent threshold must be between 1 and 1000")
    if parsed is RuleKind.REMAINING and not 0 <= threshold <= 10**15:
        raise ValueError("a remaining threshold must be between 0 and 10^15 credits")
    return parsed, threshold


@dataclass(frozen=True, slots=True)
class TopUpRule:
    """When a charge leaves fewer than `below` credits, grant `credits` (expiring after
    `expires_days`, or never), at most `max_per_period` times a billing period."""

    id: str
    team_id: str
    below: int
    credits: int
    expires_days: int | None
    max_per_period: int
    created_at: Instant


MAX_TOPUP_DAYS = 3_660


def check_topup(
    below: object, credits: object, expires_days: object, max_per_period: object
) -> None:
    """ValueError naming the field of a top-up rule that is not acceptable."""
    for name, value, low, high in (
        ("below", below, 1, 10**15),
        ("credits", credits, 1, 10**15),
        ("maxPerPeriod", max_per_period, 1, 1_000),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}: must be a whole number from {low} to {high}")
    if expires_days is not None and (
        isinstance(expires_days, bool)
        or not isinstance(expires_days, int)
        or not 1 <= expires_days <= MAX_TOPUP_DAYS
    ):
        raise ValueError(f"expiresDays: must be a whole number from 1 to {MAX_TOPUP_DAYS}")
