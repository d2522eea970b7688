"""Each record as it goes on the wire: one pydantic model per shape, the only description of it.

The admin API renders its answers from these models (http/admin/), its OpenAPI document
describes them from the same models, and the CLI's `--json` and the dashboard can render the
same records through them. Keys are spelled as the Firecrawl API spells them (camelCase);
instants are ISO 8601 UTC with milliseconds. Every field is always present (a null where there
is no value), so every field is required; unknown fields are refused.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model

from creditgate.domain.alerts import AlertRule as AlertRuleRecord
from creditgate.domain.alerts import TopUpRule as TopUpRuleRecord
from creditgate.domain.book import Check
from creditgate.domain.errors import STATUS
from creditgate.domain.instants import Instant as InstantMs
from creditgate.domain.instants import format_iso
from creditgate.domain.plans import Plan as PlanRecord
from creditgate.domain.teams import ApiKey as ApiKeyRecord
from creditgate.domain.teams import Team as TeamRecord
from creditgate.services import account, ingest, ledger, ledger_views, reservations
from creditgate.storage.alert_rows import FiredRow
from creditgate.storage.webhook_rows import Delivery as DeliveryRecord
from creditgate.storage.webhook_rows import Endpoint

Instant = str  # ISO 8601 UTC, milliseconds, e.g. 2026-08-01T00:00:00.000Z


def iso(value: InstantMs | None) -> str | None:
    return None if value is None else format_iso(value)


class Answer(BaseModel):
    """The `data` of a success envelope, or one item of it."""

    model_config = ConfigDict(extra="forbid")

    def render(self) -> dict[str, Any]:
        """Its JSON object, every field present."""
        return self.model_dump(mode="json")


class Team(Answer):
    id: str
    name: str
    plan: str
    anchor: Instant = Field(description="when the team's first billing period started")
    suspended: bool
    allowOverage: bool
    createdAt: Instant

    @classmethod
    def of(cls, team: TeamRecord) -> Team:
        return cls(
            id=team.id,
            name=team.name,
            plan=team.plan_id,
            anchor=format_iso(team.anchor),
            suspended=team.suspended,
            allowOverage=team.allow_overage,
            createdAt=format_iso(team.created_at),
        )


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

    @staticmethod
    def fields_of(key: ApiKeyRecord) -> dict[str, Any]:
        return {
            "id": key.id,
            "teamId": key.team_id,
            "name": key.name,
            "hint": key.hint,
            "cap": key.cap,
            "createdAt": format_iso(key.created_at),
            "revokedAt": iso(key.revoked_at),
            "expiresAt": iso(key.expires_at),
            "rpm": key.rpm,
            "rotatedFrom": key.rotated_from,
            "metadata": None if key.metadata is None else dict(key.metadata),
            "lastUsedAt": iso(key.last_used_at),
        }

    @classmethod
    def of(cls, key: ApiKeyRecord) -> ApiKey:
        return cls(**cls.fields_of(key))


class NewApiKey(ApiKey):
    key: str = Field(description="the fc- key itself, shown this once")

    @classmethod
    def made(cls, key: ApiKeyRecord, secret: str) -> NewApiKey:
        return cls(**cls.fields_of(key), key=secret)


class RotatedKey(NewApiKey):
    replaced: ApiKey = Field(description="the key it replaced, now expiring at its expiresAt")

    @classmethod
    def rotated(cls, new: ApiKeyRecord, secret: str, old: ApiKeyRecord) -> RotatedKey:
        return cls(**cls.fields_of(new), key=secret, replaced=ApiKey.of(old))


class Plan(Answer):
    id: str
    credits: int = Field(description="credits granted every month (once for a once plan)")
    interval: Literal["month", "year", "once"]
    concurrency: int
    scrapeRpm: int
    crawlRpm: int

    @classmethod
    def of(cls, plan: PlanRecord) -> Plan:
        return cls(
            id=plan.id,
            credits=plan.credits,
            interval=plan.interval,
            concurrency=plan.concurrency,
            scrapeRpm=plan.scrape_rpm,
            crawlRpm=plan.crawl_rpm,
        )


class Balance(Answer):
    remainingCredits: int
    planCredits: int
    billingPeriodStart: Instant | None = Field(description="null for a once plan")
    billingPeriodEnd: Instant | None = Field(description="null for a once plan")

    @classmethod
    def of(cls, usage: account.CreditUsage) -> Balance:
        return cls(
            remainingCredits=usage.remaining,
            planCredits=usage.plan_credits,
            billingPeriodStart=iso(usage.period_start),
            billingPeriodEnd=iso(usage.period_end),
        )


class UsagePeriod(Answer):
    startDate: Instant | None
    endDate: Instant | None
    apiKey: str | None = Field(description="the key's name with byKey=true; else null")
    creditsUsed: int

    @classmethod
    def of(cls, row: account.UsageRow) -> UsagePeriod:
        return cls(
            startDate=iso(row.start),
            endDate=iso(row.end),
            apiKey=row.key_name,
            creditsUsed=row.credits,
        )


class Charge(Answer):
    id: str
    teamId: str
    keyId: str
    credits: int
    occurredAt: Instant
    periodStart: Instant
    overage: int = Field(description="credits charged beyond the balance (overage teams only)")
    remainingCredits: int = Field(description="the team's available credits after the charge")

    @classmethod
    def of(cls, result: ledger.ChargeResult) -> Charge:
        return cls(
            id=result.id,
            teamId=result.team_id,
            keyId=result.key_id,
            credits=result.credits,
            occurredAt=format_iso(result.occurred_at),
            periodStart=format_iso(result.period_start),
            overage=result.overage,
            remainingCredits=result.remaining_credits,
        )


class Grant(Answer):
    id: str
    teamId: str
    kind: str
    credits: int
    startsAt: Instant
    expiresAt: Instant | None
    remainingCredits: int

    @classmethod
    def of(cls, result: ledger.GrantResult) -> Grant:
        return cls(
            id=result.id,
            teamId=result.team_id,
            kind=result.kind,
            credits=result.credits,
            startsAt=format_iso(result.starts_at),
            expiresAt=iso(result.expires_at),
            remainingCredits=result.remaining_credits,
        )


class BatchOutcome(Answer):
    """One event of a batch: accepted or duplicate with its charge, or rejected with the error
    the single charge would have answered (its status as code, its fields beside it)."""

    model_config = ConfigDict(extra="allow")

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    charge: Charge | None = Field(None, description="when accepted or duplicate")
    code: int | None = Field(None, description="when rejected: the HTTP status of the error")
    error: str | None = Field(None, description="when rejected")

    def render(self) -> dict[str, Any]:
        """Only the fields its status has: charge, or code and error and the error's fields."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def of(cls, outcome: ingest.EventOutcome) -> BatchOutcome:
        fields: dict[str, Any] = {"index": outcome.index, "status": outcome.status}
        if outcome.result is not None:
            fields["charge"] = Charge.of(outcome.result)
        if outcome.error is not None:
            fields.update(
                code=STATUS[type(outcome.error)],
                error=outcome.error.message,
                **outcome.error.details,
            )
        return cls(**fields)


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

    @classmethod
    def of(cls, view: reservations.ReservationView) -> Reservation:
        return cls(
            id=view.id,
            teamId=view.team_id,
            keyId=view.key_id,
            credits=view.credits,
            settled=view.settled,
            holding=view.holding,
            status=view.status,  # a HoldStatus value
            createdAt=format_iso(view.created_at),
            expiresAt=format_iso(view.expires_at),
            closedAt=iso(view.closed_at),
            overage=view.overage,
            remainingCredits=view.remaining_credits,
            slots=view.slots,
        )


class CheckVerdict(Answer):
    allowed: bool
    requiredCredits: int
    remainingCredits: int
    teamRemainingCredits: int
    keyRemainingCredits: int | None = Field(description="null: the key has no cap")
    limitedBy: str | None = Field(description="when refused: team or key cap")

    @classmethod
    def of(cls, verdict: Check) -> CheckVerdict:
        return cls(
            allowed=verdict.allowed,
            requiredCredits=verdict.required,
            remainingCredits=verdict.remaining,
            teamRemainingCredits=verdict.team_remaining,
            keyRemainingCredits=verdict.key_remaining,
            limitedBy=verdict.limited_by,
        )


class AlertRule(Answer):
    id: str
    teamId: str
    keyId: str | None
    kind: Literal["percent", "remaining"]
    threshold: int
    createdAt: Instant

    @classmethod
    def of(cls, rule: AlertRuleRecord) -> AlertRule:
        return cls(
            id=rule.id,
            teamId=rule.team_id,
            keyId=rule.key_id,
            kind=str(rule.kind),  # an AlertKind value
            threshold=rule.threshold,
            createdAt=format_iso(rule.created_at),
        )


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

    @classmethod
    def of(cls, rule: TopUpRuleRecord, counted_in: InstantMs | None, granted: int) -> TopUpRule:
        return cls(
            id=rule.id,
            teamId=rule.team_id,
            below=rule.below,
            credits=rule.credits,
            expiresDays=rule.expires_days,
            maxPerPeriod=rule.max_per_period,
            createdAt=format_iso(rule.created_at),
            grantedInPeriod=granted,  # in countedInPeriod (a later period starts at 0)
            countedInPeriod=iso(counted_in),
        )


class RemovedAlertRule(Answer):
    """A rule removed (an alert rule or a top-up rule)."""

    id: str
    removed: bool


class FiredAlert(Answer):
    ruleId: str
    periodStart: Instant
    firedAt: Instant
    eventId: str
    type: str
    event: dict[str, Any] = Field(description="the event as its webhook delivers it")

    @classmethod
    def of(cls, row: FiredRow) -> FiredAlert:
        return cls(
            ruleId=row.rule_id,
            periodStart=format_iso(row.period_start),
            firedAt=format_iso(row.fired_at),
            eventId=row.event_id,
            type=row.type,
            event=orjson.loads(row.payload),
        )


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

    @staticmethod
    def fields_of(e: Endpoint) -> dict[str, Any]:
        return {
            "id": e.id,
            "teamId": e.team_id,
            "url": e.url,
            "eventTypes": None if e.event_types is None else list(e.event_types),
            "createdAt": format_iso(e.created_at),
            "disabledAt": iso(e.disabled_at),
            "previousSecretUntil": iso(e.previous_until),
        }

    @classmethod
    def of(cls, e: Endpoint) -> WebhookEndpoint:
        return cls(**cls.fields_of(e))


class NewWebhookEndpoint(WebhookEndpoint):
    secret: str = Field(description="the signing secret, shown this once")

    @classmethod
    def made(cls, e: Endpoint, secret: str) -> NewWebhookEndpoint:
        return cls(**cls.fields_of(e), secret=secret)


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

    @classmethod
    def of(cls, d: DeliveryRecord) -> Delivery:
        return cls(
            eventId=d.event_id,
            type=d.event_type,
            teamId=d.team_id,
            seq=d.event_seq,
            status=d.status,  # one of the three
            attempts=d.attempts,
            lastAttemptAt=iso(d.last_attempt),
            lastStatus=d.last_status,
            lastError=d.last_error,
            nextAttemptAt=iso(d.next_attempt) if d.status == "pending" else None,
            deliveredAt=iso(d.delivered_at),
            createdAt=format_iso(d.created_at),
        )


def _ledger_rows(name: str, listing: ledger_views.Listing) -> type[Answer]:
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
    """Not JSON: the export's 200 is CSV or NDJSON, streamed (http/admin/ledger.py)."""


# The CLI's `--json` (cli/main.py) renders through these until it names the models itself.


def team_json(team: TeamRecord) -> dict[str, Any]:
    return Team.of(team).render()


def key_json(key: ApiKeyRecord) -> dict[str, Any]:
    return ApiKey.of(key).render()


def plan_json(plan: PlanRecord) -> dict[str, Any]:
    return Plan.of(plan).render()


def usage_json(row: account.UsageRow) -> dict[str, Any]:
    return UsagePeriod.of(row).render()


def charge_json(result: ledger.ChargeResult) -> dict[str, Any]:
    return Charge.of(result).render()


def grant_json(result: ledger.GrantResult) -> dict[str, Any]:
    return Grant.of(result).render()


def rule_json(rule: AlertRuleRecord) -> dict[str, Any]:
    return AlertRule.of(rule).render()


def fired_json(row: FiredRow) -> dict[str, Any]:
    return FiredAlert.of(row).render()


def endpoint_json(e: Endpoint, secret: str | None = None) -> dict[str, Any]:
    if secret is not None:
        return NewWebhookEndpoint.made(e, secret).render()
    return WebhookEndpoint.of(e).render()


def delivery_json(d: DeliveryRecord) -> dict[str, Any]:
    return Delivery.of(d).render()


def topup_json(rule: TopUpRuleRecord, counted_in: InstantMs | None, granted: int) -> dict[str, Any]:
    return TopUpRule.of(rule, counted_in, granted).render()
