"""Each record as a JSON object: one shape for the admin API's answers and the CLI's `--json`.

Keys are spelled as the Firecrawl API spells them (camelCase); instants are ISO 8601 UTC.
"""

from __future__ import annotations

from typing import Any

import orjson

from creditgate.domain.alerts import AlertRule, TopUpRule
from creditgate.domain.instants import Instant, format_iso
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team
from creditgate.services import account, ledger
from creditgate.storage.alerts import FiredRow
from creditgate.storage.webhooks import Delivery, Endpoint


def iso(value: Instant | None) -> str | None:
    return None if value is None else format_iso(value)


def team_json(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "plan": team.plan_id,
        "anchor": iso(team.anchor),
        "suspended": team.suspended,
        "allowOverage": team.allow_overage,
        "createdAt": iso(team.created_at),
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "teamId": key.team_id,
        "name": key.name,
        "hint": key.hint,
        "cap": key.cap,
        "createdAt": iso(key.created_at),
        "revokedAt": iso(key.revoked_at),
        "expiresAt": iso(key.expires_at),
        "rpm": key.rpm,
        "rotatedFrom": key.rotated_from,
        "metadata": None if key.metadata is None else dict(key.metadata),
        "lastUsedAt": iso(key.last_used_at),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "credits": plan.credits,
        "interval": plan.interval,
        "concurrency": plan.concurrency,
        "scrapeRpm": plan.scrape_rpm,
        "crawlRpm": plan.crawl_rpm,
    }


def usage_json(row: account.UsageRow) -> dict[str, Any]:
    return {
        "startDate": iso(row.start),
        "endDate": iso(row.end),
        "apiKey": row.key_name,
        "creditsUsed": row.credits,
    }


def charge_json(result: ledger.ChargeResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "teamId": result.team_id,
        "keyId": result.key_id,
        "credits": result.credits,
        "occurredAt": iso(result.occurred_at),
        "periodStart": iso(result.period_start),
        "overage": result.overage,
        "remainingCredits": result.remaining_credits,
    }


def grant_json(result: ledger.GrantResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "teamId": result.team_id,
        "kind": result.kind,
        "credits": result.credits,
        "startsAt": iso(result.starts_at),
        "expiresAt": iso(result.expires_at),
        "remainingCredits": result.remaining_credits,
    }


def rule_json(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "teamId": rule.team_id,
        "keyId": rule.key_id,
        "kind": str(rule.kind),
        "threshold": rule.threshold,
        "createdAt": iso(rule.created_at),
    }


def fired_json(row: FiredRow) -> dict[str, Any]:
    return {
        "ruleId": row.rule_id,
        "periodStart": iso(row.period_start),
        "firedAt": iso(row.fired_at),
        "eventId": row.event_id,
        "type": row.type,
        "event": orjson.loads(row.payload),
    }


def endpoint_json(e: Endpoint, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.id,
        "teamId": e.team_id,
        "url": e.url,
        "eventTypes": None if e.event_types is None else list(e.event_types),
        "createdAt": iso(e.created_at),
        "disabledAt": iso(e.disabled_at),
        "previousSecretUntil": iso(e.previous_until),
    }
    if secret is not None:
        out["secret"] = secret  # shown once
    return out


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "eventId": d.event_id,
        "type": d.event_type,
        "teamId": d.team_id,
        "seq": d.event_seq,
        "status": d.status,
        "attempts": d.attempts,
        "lastAttemptAt": iso(d.last_attempt),
        "lastStatus": d.last_status,
        "lastError": d.last_error,
        "nextAttemptAt": iso(d.next_attempt) if d.status == "pending" else None,
        "deliveredAt": iso(d.delivered_at),
        "createdAt": iso(d.created_at),
    }


def topup_json(rule: TopUpRule, counted_in: Instant | None, granted: int) -> dict[str, Any]:
    return {
        "id": rule.id,
        "teamId": rule.team_id,
        "below": rule.below,
        "credits": rule.credits,
        "expiresDays": rule.expires_days,
        "maxPerPeriod": rule.max_per_period,
        "createdAt": iso(rule.created_at),
        "grantedInPeriod": granted,  # in countedInPeriod (a later period starts at 0)
        "countedInPeriod": iso(counted_in),
    }
