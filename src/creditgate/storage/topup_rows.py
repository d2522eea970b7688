"""Top-up rule rows (the write path records what they granted: storage/book.py)."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from creditgate.domain.alerts import TopUpRule
from creditgate.domain.instants import Instant
from creditgate.storage.tables import topup_rules


def insert_rule(conn: Connection, rule: TopUpRule) -> None:
    conn.execute(
        insert(topup_rules).values(
            team_id=rule.team_id,
            id=rule.id,
            below=rule.below,
            credits=rule.credits,
            expires_days=rule.expires_days,
            max_per_period=rule.max_per_period,
            created_ms=rule.created_at,
        )
    )


def list_rules(conn: Connection, team_id: str) -> list[tuple[TopUpRule, Instant | None, int]]:
    t = topup_rules
    query = select(t).where(t.c.team_id == team_id).order_by(t.c.created_ms, t.c.id)
    return [
        (
            TopUpRule(
                r.id,
                r.team_id,
                int(r.below),
                int(r.credits),
                r.expires_days,
                int(r.max_per_period),
                r.created_ms,
            ),
            r.period_start_ms,
            int(r.granted),
        )
        for r in conn.execute(query)
    ]


def delete_rule(conn: Connection, team_id: str, rule_id: str) -> bool:
    result = conn.execute(
        delete(topup_rules).where(topup_rules.c.team_id == team_id, topup_rules.c.id == rule_id)
    )
    return bool(result.rowcount)
