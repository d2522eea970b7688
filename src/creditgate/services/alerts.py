"""Alert rules: thresholds per team or per key; the write path fires them (domain/book.py)."""

from __future__ import annotations

from sqlalchemy import Connection

from creditgate.domain.alerts import DEFAULT_PERCENTS, AlertRule, RuleKind, check_rule
from creditgate.domain.errors import Conflict, InvalidInput, NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.storage import alert_rows as alerts
from creditgate.storage import key_rows as keys
from creditgate.storage import team_rows as teams
from creditgate.storage.alert_rows import FiredRow
from creditgate.storage.database import Database

MAX_RULES = 50  # per team


def default_rules(conn: Connection, team_id: str, now: Instant) -> None:
    """A new team's rules: 80% and 100% of its period's credits."""
    for percent in DEFAULT_PERCENTS:
        rule = AlertRule(f"default-{percent}", team_id, None, RuleKind.PERCENT, percent, now)
        alerts.insert_rule(conn, rule)


def add_rule(
    db: Database,
    team_id: str,
    kind: object,
    threshold: object,
    now: Instant,
    key_id: str | None = None,
) -> AlertRule:
    try:
        parsed, value = check_rule(kind, threshold)
    except ValueError as exc:
        field = "threshold" if "threshold" in str(exc) else "kind"
        raise InvalidInput(str(exc), field=field) from None
    with db.write() as conn:
        teams.require_team(conn, team_id)
        if key_id is not None:
            key = keys.get_key(conn, key_id)
            if key is None or key.team_id != team_id:
                raise NotFound(f"API key {key_id} not found", keyId=key_id)
        existing = alerts.list_rules(conn, team_id)
        same = [r for r in existing if (r.key_id, r.kind, r.threshold) == (key_id, parsed, value)]
        if same:
            raise Conflict(f"the team already has this rule: {same[0].id}", ruleId=same[0].id)
        if len(existing) >= MAX_RULES:
            raise InvalidInput(f"a team has at most {MAX_RULES} alert rules", field="threshold")
        rule = AlertRule(new_id(now), team_id, key_id, parsed, value, now)
        alerts.insert_rule(conn, rule)
    return rule


def list_rules(db: Database, team_id: str) -> list[AlertRule]:
    with db.read() as conn:
        teams.require_team(conn, team_id)
        return alerts.list_rules(conn, team_id)


def remove_rule(db: Database, team_id: str, rule_id: str) -> None:
    with db.write() as conn:
        if not alerts.delete_rule(conn, team_id, rule_id):
            raise NotFound(f"Alert rule {rule_id} not found", ruleId=rule_id)


def fired(db: Database, team_id: str, limit: int = 100) -> list[FiredRow]:
    with db.read() as conn:
        teams.require_team(conn, team_id)
        return alerts.list_fired(conn, team_id, limit)
