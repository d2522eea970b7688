"""Row <-> domain object conversions shared by the storage modules."""

from __future__ import annotations

import json
from typing import Any

from creditgate.domain.grants import GrantState
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team


def team_from_row(row: Any, prefix: str = "") -> Team:
    """A Team from a row; `prefix` picks the team's columns out of a joined row."""
    m = row._mapping
    return Team(
        id=m[prefix + "id"],
        name=m[prefix + "name"],
        plan_id=m[prefix + "plan_id"],
        anchor=m[prefix + "anchor_ms"],
        suspended=bool(m[prefix + "suspended"]),
        allow_overage=bool(m[prefix + "allow_overage"]),
        created_at=m[prefix + "created_ms"],
        granted_through=m[prefix + "granted_through_ms"],
        next_rollover=m[prefix + "next_rollover_ms"],
        last_charge_at=m[prefix + "last_charge_ms"],
    )


def key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        team_id=row.team_id,
        name=row.name,
        hint=row.hint,
        cap=row.cap,
        created_at=row.created_ms,
        revoked_at=row.revoked_ms,
        expires_at=row.expires_ms,
        rpm=row.rpm,
        rotated_from=row.rotated_from,
        lineage=row.lineage_id,
        metadata=metadata_from(row.metadata_json),
        last_used_at=row.last_used_ms,
    )


def metadata_from(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def metadata_text(metadata: Any) -> str | None:
    """Key metadata as stored: compact JSON, keys sorted (None: no metadata)."""
    if metadata is None:
        return None
    return json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def plan_from_row(row: Any) -> Plan:
    return Plan(
        id=row.id,
        credits=row.credits,
        interval=row.interval,
        concurrency=row.concurrency,
        scrape_rpm=row.scrape_rpm,
        crawl_rpm=row.crawl_rpm,
    )


def grant_from_row(row: Any) -> GrantState:
    return GrantState(
        id=row.id,
        kind=row.kind,
        starts_at=row.starts_ms,
        expires_at=row.expires_ms,
        remaining=row.remaining,
        expired_amount=row.expired_amount,
        expired_at=row.expired_ms,
        amount=row.amount,
    )
