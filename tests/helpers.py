"""Small builders for tests: a team with a key, charges, grants."""

from __future__ import annotations

from creditgate.domain.instants import Instant, parse_iso
from creditgate.domain.teams import Team
from creditgate.services import keys, ledger, teams
from creditgate.storage.database import Database


def team_with_key(
    db: Database,
    now: Instant,
    *,
    plan: str = "hobby",
    anchor: str | None = None,
    name: str = "acme",
    key_name: str = "default",
    cap: int | None = None,
    allow_overage: bool = False,
) -> tuple[Team, str, str]:
    """A team and one key: (team, the fc- key, the key's id)."""
    team = teams.create_team(
        db,
        name,
        now,
        plan_id=plan,
        anchor=None if anchor is None else parse_iso(anchor),
        allow_overage=allow_overage,
    )
    created = keys.create_key(db, team.id, now, name=key_name, cap=cap)
    return team, created.secret, created.key.id


def charge(
    db: Database,
    key: str,
    credits: int,
    now: Instant,
    *,
    at: str | None = None,
    endpoint: str | None = "scrape",
    idem: str | None = None,
) -> ledger.ChargeResult:
    return ledger.charge(
        db,
        ledger.ChargeRequest(
            key=key,
            credits=credits,
            at=None if at is None else parse_iso(at),
            endpoint=endpoint,
            idempotency_key=idem,
        ),
        now,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
