"""What the admin API answers, as models: the `data` of each success envelope.

They mirror services/wire.py's dicts (and http/admin.py's reservation_json, _outcome_json and
the inline answers) field for field; they exist for the OpenAPI document (http/openapi.py), and
tests/http/test_openapi_answers.py checks every admin answer against it, so neither can drift.
Every field is always present (a null where there is no value), so every field is required;
unknown fields are refused, so a field added to the wire without being added here fails.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from creditgate.services import ledger_views

Instant = str  # ISO 8601 UTC, milliseconds, e.g. 2026-08-01T00:00:00.000Z


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Team(Answer):
    id: str
    name: str
    plan: str
    anchor: Instant = Field(description="when the team's first billing period started")
    suspended: bool
    allowOverage: bool
    createdAt: Instant


class ApiKey(Answer):
    id: str
    teamId: str
    name: str
    hint: str = Field(description="fc-... and the key's last four characters")
    cap: int | None = Field(description="credits per billing period, at most; null: no cap")
    createdAt: Instant
    revokedAt: Instant | None
    expiresAt: Instant | None = Field(description="when it stops working; null: never")
    rpm: int | None = Field(description="its own requests per minute; null: the team's only")
    rotatedFrom: str | None = Field(description="the key this one replaced by a rotation")
    metadata: dict[str, Any] | None
    lastUsedAt: Instant | None = Field(description="its latest request (written every 10 s)")


class NewApiKey(ApiKey):
    key: str = Field(description="the fc- key itself, shown this once")


class RotatedKey(NewApiKey):
    replaced: ApiKey = Field(description="the key it replaced, now expiring at its expiresAt")


class Plan(Answer):
    id: str
    credits: int = Field(description="credits granted every month (once for a once plan)")
    interval: Literal["month", "year", "once"]
    concurrency: int
    scrapeRpm: int
    crawlRpm: int


class Balance(Answer):
    remainingCredits: int
    planCredits: int
    billingPeriodStart: Instant | None = Field(description="null for a once plan")
    billingPeriodEnd: Instant | None = Field(description="null for a once plan")


class UsagePeriod(Answer):
    startDate: Instant | None
    endDate: Instant | None
    apiKey: str | None = Field(description="the key's name with byKey=true; else null")
    creditsUsed: int


class Charge(Answer):
    id: str
    teamId: str
    keyId: str
    credits: int
    occurredAt: Instant
    periodStart: Instant
    overage: int = Field(description="credits charged beyond the balance (overage teams only)")
    remainingCredits: int = Field(description="the team's available credits after the charge")


class Grant(Answer):
    id: str
    teamId: str
    kind: str
    credits: int
    startsAt: Instant
    expiresAt: Instant | None
    remainingCredits: int


class BatchOutcome(Answer):
    """One event of a batch: accepted or duplicate with its charge, or rejected with the error
    the single charge would have answered (its status as code, its fields beside it)."""

    model_config = ConfigDict(extra="allow")

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    charge: Charge | None = Field(None, description="when accepted or duplicate")
    code: int | None = Field(None, description="when rejected: the HTTP status of the error")
    error: str | None = Field(None, description="when rejected")


class Reservation(Answer):
    id: str
    teamId: str
    keyId: str
    credits: int = Field(description="credits reserved")
    settled: int = Field(description="credits charged so far")
    holding: int = Field(description="credits still held")
    status: Literal["open", "settled", "released", "expired"]
    createdAt: Instant
    expiresAt: Instant
    closedAt: Instant | None
    overage: int
    remainingCredits: int
    slots: int = Field(description="page slots of the plan's concurrency it takes while open")


class CheckVerdict(Answer):
    allowed: bool
    requiredCredits: int
    remainingCredits: int
    teamRemainingCredits: int
    keyRemainingCredits: int | None = Field(description="null: the key has no cap")
    limitedBy: str | None = Field(description="when refused: team or key cap")


class AlertRule(Answer):
    id: str
    teamId: str
    keyId: str | None
    kind: Literal["percent", "remaining"]
    threshold: int
    createdAt: Instant


class TopUpRule(Answer):
    id: str
    teamId: str
    below: int = Field(description="when a charge leaves fewer credits than this")
    credits: int = Field(description="grant this many (kind topup)")
    expiresDays: int | None
    maxPerPeriod: int
    createdAt: Instant
    grantedInPeriod: int = Field(description="grants made in countedInPeriod")
    countedInPeriod: Instant | None


class RemovedAlertRule(Answer):
    id: str
    removed: bool


class FiredAlert(Answer):
    ruleId: str
    periodStart: Instant
    firedAt: Instant
    eventId: str
    type: str
    event: dict[str, Any] = Field(description="the event as its webhook delivers it")


class WebhookEndpoint(Answer):
    id: str
    teamId: str | None = Field(description="null: every team's events")
    url: str
    eventTypes: list[str] | None = Field(description="null: every type")
    createdAt: Instant
    disabledAt: Instant | None
    previousSecretUntil: Instant | None = Field(
        description="until when the secret before the last rotation also signs"
    )


class NewWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(description="the signing secret, shown this once")


class WebhookTest(Answer):
    delivered: bool
    status: int | None = Field(description="the endpoint's HTTP status, if it answered")
    error: str | None


class Delivery(Answer):
    eventId: str
    type: str
    teamId: str
    seq: int
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    lastAttemptAt: Instant | None
    lastStatus: int | None
    lastError: str | None
    nextAttemptAt: Instant | None
    deliveredAt: Instant | None
    createdAt: Instant


def _ledger_rows(name: str, listing: Any) -> type[Answer]:
    """A ledger listing's row (services/ledger_views.py), its fields as the listing names
    them: instants as ISO 8601 text, the rest text or whole numbers, any of them null."""
    fields: dict[str, Any] = {
        field: ((Instant | None) if is_instant else (str | int | None), ...)
        for field, _column, is_instant in listing.fields
    }
    model: type[Answer] = create_model(name, __base__=Answer, **fields)
    return model


GrantRow = _ledger_rows("GrantRow", ledger_views.GRANTS)
EntryRow = _ledger_rows("EntryRow", ledger_views.ENTRIES)
ReservationRow = _ledger_rows("ReservationRow", ledger_views.RESERVATIONS)
JobRow = _ledger_rows("JobRow", ledger_views.JOBS)


class ExportStream(Answer):
    """Not JSON: the export's 200 is described as CSV or NDJSON (openapi.describe_streams)."""
