"""The schema. Times are UTC milliseconds (BIGINT); credits are BIGINT.

Every table that grows with usage carries team_id first in its primary key (ledger promise 9), so
the ledger can be partitioned by team and a team's rows cluster together.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

plans = Table(
    "plans",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("credits", BigInteger, nullable=False),
    Column("interval", String(8), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("scrape_rpm", Integer, nullable=False),
    Column("crawl_rpm", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan_id", String(64), ForeignKey("plans.id"), nullable=False),
    Column("anchor_ms", BigInteger, nullable=False),
    Column("suspended", Boolean, nullable=False),
    Column("allow_overage", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Start of the last period whose plan credits were granted.
    Column("granted_through_ms", BigInteger, nullable=True),
    # When the team next needs a roll-forward (a new period or a grant expiring); NULL = never.
    Column("next_rollover_ms", BigInteger, nullable=True),
    Column("last_charge_ms", BigInteger, nullable=True),
    Column("event_seq", BigInteger, nullable=False, server_default="0"),  # its last event's
    Index(None, "name", unique=True),  # a team is named by its id or its name (0017)
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("team_id", String(36), ForeignKey("teams.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),
    Column("cap", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("cap_fired_period_ms", BigInteger, nullable=True),  # the period it last hit its cap
    # Key lifecycle (0008): expiry, own rate limit, rotation chain, metadata, coalesced last use.
    Column("expires_ms", BigInteger, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("rotated_from", String(36), nullable=True),
    Column("lineage_id", String(36), nullable=True),  # set once a key is rotated or replaces one
    Column("metadata_json", Text, nullable=True),
    Column("last_used_ms", BigInteger, nullable=True),
    UniqueConstraint("team_id", "name"),
    Index(None, "team_id", "lineage_id"),
)

grants = Table(
    "grants",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("expired_amount", BigInteger, nullable=False),
    Column("starts_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),
    Column("period_start_ms", BigInteger, nullable=True),
    Column("note", String(500), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expired_ms", BigInteger, nullable=True),
    UniqueConstraint("team_id", "kind", "period_start_ms"),
)

# Append-only: one row per (movement, grant) line. A movement is one credit-moving write.
entries = Table(
    "entries",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("movement_id", String(36), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed: + adds credits, - spends them
    Column("grant_id", String(36), nullable=True),
    Column("key_id", String(36), nullable=True),
    Column("period_start_ms", BigInteger, nullable=True),
    Column("endpoint", String(64), nullable=True),
    Column("api_version", String(8), nullable=True),
    Column("job_id", String(200), nullable=True),
    Column("target", String(2048), nullable=True),
    Column("note", String(500), nullable=True),
    Column("occurred_ms", BigInteger, nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
    Column("reservation_id", String(36), nullable=True),  # the hold a settlement charged
    Index(None, "team_id", "kind", "occurred_ms"),
    # A team's ledger in time order, page by page (storage/entry_pages.py; migration 0010).
    Index(None, "team_id", "occurred_ms", "movement_id", "line"),
    # A scrape charged from a credit lease is its team's by its charge (migration 0016).
    Index(None, "team_id", "job_id"),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("movement_id", String(36), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

# Rollups, kept in the same transaction as the entries they summarise (ledger promise 6).
usage_by_period = Table(
    "usage_by_period",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("period_start_ms", BigInteger, primary_key=True),
    Column("credits", BigInteger, nullable=False),
)

usage_by_key = Table(
    "usage_by_key",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("period_start_ms", BigInteger, primary_key=True),
    Column("key_id", String(36), primary_key=True),
    Column("credits", BigInteger, nullable=False),
)

usage_by_hour = Table(
    "usage_by_hour",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),
    Column("credits", BigInteger, nullable=False),
)

# Per key and UTC day, within the billing period the charges belong to: the dashboard's daily
# chart and each key's last use, whatever the number of charges.
usage_by_key_day = Table(
    "usage_by_key_day",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("period_start_ms", BigInteger, primary_key=True),
    Column("key_id", String(36), primary_key=True),
    Column("day_ms", BigInteger, primary_key=True),
    Column("credits", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),  # its latest charge's time
)

# Holds on credits for work whose cost is not known yet. A row changes state (open -> settled,
# released or expired) but the credits it charges are entries like any other charge.
reservations = Table(
    "reservations",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("amount", BigInteger, nullable=False),  # credits held when it was opened
    Column("settled", BigInteger, nullable=False),  # credits charged against it so far
    Column("status", String(16), nullable=False),  # open, settled, released, expired
    Column("endpoint", String(64), nullable=True),
    Column("api_version", String(8), nullable=True),
    Column("job_id", String(200), nullable=True),
    Column("target", String(2048), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("closed_ms", BigInteger, nullable=True),
    # The gateway process whose request holds it (NULL once a job or a client owns it): when
    # that process stops beating, its requests will never settle and their holds are released.
    Column("owner", String(36), nullable=True),
    # Pages it may have in flight upstream: 1 for a request, a crawl's maxConcurrency for a
    # crawl or batch scrape. The team's open holds' slots are its plan concurrency in use.
    Column("slots", Integer, nullable=False, server_default="1"),
    Index(None, "id", unique=True),
    Index(None, "team_id", "status", "expires_ms"),
    Index(None, "status", "expires_ms"),
    Index(None, "team_id", "job_id"),
    Index(None, "owner"),
    Index(None, "team_id", "created_ms", "id"),  # listed in time order (migration 0010)
)

# Asynchronous upstream jobs (crawl, batch scrape, extract, agent) the gateway follows: each
# holds a reservation that is settled as the upstream reports credits used.
jobs = Table(
    "jobs",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(200), primary_key=True),  # the upstream's job id
    Column("reservation_id", String(36), nullable=False),
    Column("key_id", String(36), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("status_path", String(300), nullable=False),  # e.g. /v2/crawl/<id>
    Column("status", String(16), nullable=False),  # active, cancelling, done
    Column("created_ms", BigInteger, nullable=False),
    Column("next_poll_ms", BigInteger, nullable=False),
    # A hold that grows with the job: credits added each time the reported total nears it, up
    # to the ceiling, the most the job can cost (a reported total above it is capped). NULL:
    # the hold is fixed at the start (jobs opened before migration 0012).
    Column("hold_step", BigInteger, nullable=True),
    Column("hold_ceiling", BigInteger, nullable=True),
    # A page's price at the table when it started: a step is this many credits a page until
    # the reports show pages cost more. NULL: 1.
    Column("page_price", Integer, nullable=True),
    # The most pages it can run (a crawl's forwarded limit, a batch's URLs): its hold need not
    # grow past what the pages left cost. NULL: unknown.
    Column("page_limit", Integer, nullable=True),
    # Polls in a row whose reported total did not move, once the job is cancelled.
    Column("quiet_polls", Integer, nullable=False, server_default="0"),
    Column("cancel_path", String(300), nullable=True),  # DELETE here cancels it upstream
    # Pages found and not yet scraped beyond the job's slots, at its last report: queue-status
    # counts them as waiting, as Firecrawl counts the pages in a team's concurrency queue.
    Column("waiting_pages", Integer, nullable=False, server_default="0"),
    # When it was cancelled: its slots (and hold) stay until its pages in flight can have
    # finished (domain/cancels.py), not merely until its total stops moving.
    Column("cancelled_ms", BigInteger, nullable=True),
    # The upstream's own id of the job when it differs from `id`, the id the client was given
    # (a start that waited in the queue: the client had its id before the upstream had one).
    # NULL: the same as `id`.
    Column("upstream_id", String(200), nullable=True),
    # The request's own page timeout (a crawl's scrapeOptions.timeout, a batch's timeout): a
    # page running at a cancel has ended by then. NULL: none set (the page grace bounds it).
    Column("page_timeout_ms", BigInteger, nullable=True),
    Index(None, "id", unique=True),
    Index(None, "status", "next_poll_ms"),
    Index(None, "upstream_id", unique=True),
)

# Job starts accepted while the team had no slot free (migration 0013): the client has its id
# and a hold; a follower round of any gateway process starts it upstream once slots free, the
# team's oldest first. state: queued -> starting -> started | failed; queued -> cancelled.
queued_starts = Table(
    "queued_starts",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(200), primary_key=True),  # the client's job id (a UUIDv4)
    Column("seq", BigInteger, nullable=False),  # arrival order within the team
    Column("key_id", String(36), nullable=False),
    Column("reservation_id", String(36), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("api_version", String(8), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(300), nullable=False),  # the route row's path, e.g. /v1/crawl
    Column("body", Text, nullable=False),  # the parsed request body, as JSON
    Column("headers", Text, nullable=False),  # the forwarded headers (outgoing_headers), JSON
    Column("slots", Integer, nullable=False),  # wanted
    Column("hold_step", BigInteger, nullable=True),
    Column("hold_ceiling", BigInteger, nullable=True),
    Column("page_price", Integer, nullable=True),
    Column("page_limit", Integer, nullable=True),
    Column("target", String(2048), nullable=True),
    Column("state", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("claimed_by", String(36), nullable=True),  # the process starting it
    Column("lease_ms", BigInteger, nullable=True),  # its start is abandoned after this
    Column("upstream_id", String(200), nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "id", unique=True),
    Index(None, "state", "team_id", "seq"),
)

# Dashboard forms already acted on: a form's one-time id, so a double or replayed submit of the
# same rendered form is refused instead of acting twice (storage/used_forms.py; migration 0015).
used_forms = Table(
    "used_forms",
    metadata,
    Column("form_id", String(64), primary_key=True),
    Column("used_ms", BigInteger, nullable=False),
    Index(None, "used_ms"),
)

# Gateway processes alive, by heartbeat: a hold whose owner stopped beating is released.
processes = Table(
    "processes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("started_ms", BigInteger, nullable=False),
    Column("heartbeat_ms", BigInteger, nullable=False),
    Index(None, "heartbeat_ms"),
)

# Alerts: thresholds per team (or per key) and what fired, once per rule and period.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("key_id", String(36), nullable=True),  # NULL: the whole team
    Column("kind", String(16), nullable=False),  # percent (used) or remaining (credits left)
    Column("threshold", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("fired_period_ms", BigInteger, nullable=True),  # the period it last fired in
)

alerts_fired = Table(
    "alerts_fired",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("rule_id", String(80), primary_key=True),  # a rule's id, or cap:<key id>
    Column("period_start_ms", BigInteger, primary_key=True),
    Column("fired_ms", BigInteger, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
)

# Automatic top-ups: when a charge leaves fewer than `below` credits, grant `credits` (expiring
# after `expires_days`, or never), at most `max_per_period` times a billing period.
topup_rules = Table(
    "topup_rules",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("below", BigInteger, nullable=False),
    Column("credits", BigInteger, nullable=False),
    Column("expires_days", Integer, nullable=True),
    Column("max_per_period", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("period_start_ms", BigInteger, nullable=True),  # the period `granted` counts in
    Column("granted", Integer, nullable=False, server_default="0"),
)

# Events, numbered per team (teams.event_seq) in the transaction that caused them; webhooks
# deliver them in that order.
events = Table(
    "events",
    metadata,
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("id", String(36), nullable=False),  # the webhook-id
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body sent
    Column("created_ms", BigInteger, nullable=False),
    Index(None, "id", unique=True),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("team_id", String(36), ForeignKey("teams.id"), nullable=True),  # NULL: every team
    Column("url", String(2048), nullable=False),
    Column("secret", String(100), nullable=False),
    # After a rotation, the old secret signs too until then (receivers switch in their time).
    Column("previous_secret", String(100), nullable=True),
    Column("previous_until_ms", BigInteger, nullable=True),
    Column("event_types", String(500), nullable=True),  # comma-separated; NULL: all
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled_ms", BigInteger, nullable=True),
)

# The outbox: one row per (endpoint, event), written in the event's own transaction.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("endpoint_id", String(36), ForeignKey("webhook_endpoints.id"), primary_key=True),
    Column("team_id", String(36), ForeignKey("teams.id"), primary_key=True),
    Column("event_seq", BigInteger, primary_key=True),
    Column("status", String(16), nullable=False),  # pending, delivered, dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_attempt_ms", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("delivered_ms", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Index(None, "status", "next_attempt_ms"),
)
