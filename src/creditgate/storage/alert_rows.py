"""Alert rule rows and the log of alerts fired (the write path records firings)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from creditgate.domain.alerts import AlertRule, RuleKind
from creditgate.domain.instants import Instant
from creditgate.storage.tables import alert_rules, alerts_fired, events


def insert_rule(conn: Connection, rule: AlertRule) -> None:
    conn.execute(
        insert(alert_rules).values(
            team_id=rule.team_id,
            id=rule.id,
            key_id=rule.key_id,
            kind=str(rule.kind),
            threshold=rule.threshold,
            created_ms=rule.created_at,
        )
    )


def list_rules(conn: Connection, team_id: str) -> list[AlertRule]:
    query = (
        select(alert_rules)
        .where(alert_rules.c.team_id == team_id)
        .order_by(
            alert_rules.c.created_ms, alert_rules.c.kind, alert_rules.c.threshold, alert_rules.c.id
        )
    )
    return [
        AlertRule(r.id, r.team_id, r.key_id, RuleKind(r.kind), int(r.threshold), r.created_ms)
        for r in conn.execute(query)
    ]


def delete_rule(conn: Connection, team_id: str, rule_id: str) -> bool:
    result = conn.execute(
        delete(alert_rules).where(alert_rules.c.team_id == team_id, alert_rules.c.id == rule_id)
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class FiredRow:
    rule_id: str
    period_start: Instant
    fired_at: Instant
    event_seq: int
    event_id: str
    type: str
    payload: str


def list_fired(conn: Connection, team_id: str, limit: int = 100) -> list[FiredRow]:
    """The team's alerts fired, newest first, with the event each raised."""
    query = (
        select(
            alerts_fired.c.rule_id,
            alerts_fired.c.period_start_ms,
            alerts_fired.c.fired_ms,
            alerts_fired.c.event_seq,
            events.c.id,
            events.c.type,
            events.c.payload,
        )
        .join(
            events,
            (events.c.team_id == alerts_fired.c.team_id)
            & (events.c.seq == alerts_fired.c.event_seq),
        )
        .where(alerts_fired.c.team_id == team_id)
        .order_by(alerts_fired.c.event_seq.desc())
        .limit(limit)
    )
    return [FiredRow(*r) for r in conn.execute(query)]
