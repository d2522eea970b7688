"""Request bodies of the admin API: strict types, unknown fields refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from creditgate.domain.errors import InvalidInput
from creditgate.domain.pricing import MAX_CREDITS

Credits = Annotated[StrictInt, Field(ge=0, le=MAX_CREDITS)]
PositiveCredits = Annotated[StrictInt, Field(ge=1, le=MAX_CREDITS)]
Timestamp = Annotated[
    StrictStr, Field(description="ISO 8601 with a zone, e.g. 2026-08-01T00:00:00Z")
]
Text = Annotated[StrictStr, Field(max_length=500)]
IdempotencyKey = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KeyedBody(Body):
    """A body that names an API key, by the fc- key itself or by its id (exactly one)."""

    key: StrictStr | None = Field(None, description="the fc- key")
    keyId: StrictStr | None = Field(None, description="or the key's id")

    def key_ref(self) -> str:
        if (self.key is None) == (self.keyId is None):
            raise InvalidInput("give exactly one of key or keyId", field="key")
        return self.key or self.keyId or ""


class TeamIn(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    plan: StrictStr = "free"
    anchor: Timestamp | None = None
    allowOverage: StrictBool = False


class TeamPatch(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    plan: StrictStr | None = None
    now: StrictBool | None = Field(
        None,
        description="with plan: a plan with more credits raises this period's credits to its "
        "own at once (otherwise they arrive with the next period)",
    )
    suspended: StrictBool | None = None
    allowOverage: StrictBool | None = None


KeyRpm = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
KEY_RPM = "the key's own requests per minute, beside its team's plan limits; null: none of its own"
KEY_EXPIRES = (
    "from this instant the key is refused as an unknown one (401 Unauthorized: Invalid token); "
    "null: never"
)
KEY_METADATA = (
    "a flat JSON object: at most 32 entries, keys of 1 to 64 characters, values strings, "
    "numbers, booleans or null, 2,048 bytes at most as JSON"
)
KeyMetadata = dict[str, Any]


class KeyIn(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = None
    cap: Credits | None = Field(default=None, description="credits per billing period, at most")
    expiresAt: Timestamp | None = Field(default=None, description=KEY_EXPIRES)
    rpm: KeyRpm | None = Field(default=None, description=KEY_RPM)
    metadata: KeyMetadata | None = Field(default=None, description=KEY_METADATA)


class KeyPatch(Body):
    """The fields to change, at least one; null clears metadata, rpm or expiresAt."""

    metadata: KeyMetadata | None = Field(
        default=None, description=KEY_METADATA + " (replaced whole)"
    )
    rpm: KeyRpm | None = Field(default=None, description=KEY_RPM)
    expiresAt: Timestamp | None = Field(default=None, description=KEY_EXPIRES)


class KeyRotateIn(Body):
    overlapSeconds: Annotated[StrictInt, Field(ge=0, le=30 * 24 * 3600)] = Field(
        default=0,
        description="how long the old key keeps working beside the new one; then it expires",
    )


PlanId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
PLAN_CREDITS = (
    "credits granted every billing period: periods are monthly for month and year plans alike "
    "(a yearly plan is billed yearly and still resets credits monthly), so this is what a team "
    "gets each month; a once plan grants them once, never renewed"
)
INTERVAL = (
    "how the plan is billed: month, year (credits still granted monthly) or once (one grant, "
    "no renewal)"
)
CONCURRENCY = "jobs a team may run at once"
SCRAPE_RPM = "scrape, map and search requests per minute"
CRAWL_RPM = "crawl requests per minute"
PlanCredits = Annotated[StrictInt, Field(ge=0, le=MAX_CREDITS, description=PLAN_CREDITS)]
Interval = Annotated[StrictStr, Field(description=INTERVAL)]
Concurrency = Annotated[StrictInt, Field(ge=0, description=CONCURRENCY)]
ScrapeRpm = Annotated[StrictInt, Field(ge=0, description=SCRAPE_RPM)]
CrawlRpm = Annotated[StrictInt, Field(ge=0, description=CRAWL_RPM)]


class PlanIn(Body):
    """A new plan; the fields left out take these defaults."""

    id: PlanId
    credits: PlanCredits
    interval: Interval = "month"
    concurrency: Concurrency = 2
    scrapeRpm: ScrapeRpm = 10
    crawlRpm: CrawlRpm = 2


class PlanPut(Body):
    """A plan replaced whole: every field given, none defaulted."""

    id: PlanId | None = Field(None, description="if given, the id in the path")
    credits: PlanCredits
    interval: Interval
    concurrency: Concurrency
    scrapeRpm: ScrapeRpm
    crawlRpm: CrawlRpm


class PlanPatch(Body):
    """The fields to change, at least one; the others keep their values."""

    credits: PlanCredits | None = Field(None, description=PLAN_CREDITS)
    interval: Interval | None = Field(None, description=INTERVAL)
    concurrency: Concurrency | None = Field(None, description=CONCURRENCY)
    scrapeRpm: ScrapeRpm | None = Field(None, description=SCRAPE_RPM)
    crawlRpm: CrawlRpm | None = Field(None, description=CRAWL_RPM)


class GrantIn(Body):
    credits: PositiveCredits
    kind: StrictStr = Field("pack", description="pack, coupon or topup")
    expiresAt: Timestamp | None = None
    note: Text | None = None
    idempotencyKey: IdempotencyKey | None = None


class ChargeIn(KeyedBody):
    credits: Credits
    at: Timestamp | None = Field(None, description="when the work happened; default now")
    endpoint: Annotated[StrictStr, Field(max_length=64)] | None = None
    apiVersion: Annotated[StrictStr, Field(max_length=8)] | None = None
    jobId: Annotated[StrictStr, Field(max_length=200)] | None = None
    target: Annotated[StrictStr, Field(max_length=2048)] | None = None
    idempotencyKey: IdempotencyKey | None = None


class ChargeBatchIn(Body):
    events: list[dict[str, object]] = Field(description="up to 1,000 charges, each as ChargeIn")


class ReserveIn(KeyedBody):
    credits: PositiveCredits
    ttlSeconds: Annotated[StrictInt, Field(ge=1, le=7 * 24 * 3600)] = 3600
    endpoint: Annotated[StrictStr, Field(max_length=64)] | None = None
    apiVersion: Annotated[StrictStr, Field(max_length=8)] | None = None
    jobId: Annotated[StrictStr, Field(max_length=200)] | None = None
    target: Annotated[StrictStr, Field(max_length=2048)] | None = None
    idempotencyKey: IdempotencyKey | None = None


class SettleIn(Body):
    credits: Credits
    final: StrictBool = Field(False, description="close the reservation and release the rest")
    idempotencyKey: IdempotencyKey | None = None


class ReleaseIn(Body):
    idempotencyKey: IdempotencyKey | None = None


class CheckIn(KeyedBody):
    credits: Credits


class AlertRuleIn(Body):
    kind: Annotated[
        StrictStr,
        Field(
            description="percent: this % of the period's credits (or the key's cap) used; "
            "remaining: no more than this many credits left"
        ),
    ]
    threshold: Annotated[StrictInt, Field(ge=0, le=10**15)]
    keyId: StrictStr | None = Field(None, description="a key of the team; none: the whole team")


class WebhookIn(Body):
    url: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    teamId: StrictStr | None = Field(None, description="one team's events; none: every team's")
    eventTypes: list[StrictStr] | None = Field(None, description="none: every type")


class TopUpIn(Body):
    below: Annotated[StrictInt, Field(ge=1, le=10**15, description="when fewer credits are left")]
    credits: Annotated[StrictInt, Field(ge=1, le=10**15, description="grant this many")]
    expiresDays: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    maxPerPeriod: Annotated[StrictInt, Field(ge=1, le=1000)] = 1


class Empty(Body):
    """No field: a route that takes none refuses any."""


def require_changes(body: Body) -> None:
    """A PATCH changes the fields it names: naming none is a mistake, and null is no value."""
    for name in sorted(body.model_fields_set):
        if getattr(body, name) is None:
            raise InvalidInput(f"Bad Request: {name}: must not be null", field=name)
    if not body.model_fields_set:
        raise InvalidInput(
            "Bad Request: nothing to update: give at least one of "
            + ", ".join(type(body).model_fields)
        )
