"""Automatic top-ups: rules per team, applied by the write path (domain/book.py) in the
transaction of the charge that leaves the team under the rule's threshold."""

from __future__ import annotations

from creditgate.domain.alerts import TopUpRule, check_topup
from creditgate.domain.errors import InvalidInput, NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.storage import team_rows as teams
from creditgate.storage import topup_rows as topups
from creditgate.storage.database import Database

MAX_RULES = 20  # per team


def add_rule(
    db: Database,
    team_id: str,
    below: object,
    credits: object,
    now: Instant,
    *,
    expires_days: object = None,
    max_per_period: object = 1,
) -> TopUpRule:
    try:
        check_topup(below, credits, expires_days, max_per_period)
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise InvalidInput(f"Bad Request: {exc}", field=field) from None
    assert isinstance(below, int) and isinstance(credits, int) and isinstance(max_per_period, int)
    assert expires_days is None or isinstance(expires_days, int)
    with db.write() as conn:
        teams.require_team(conn, team_id)
        if len(topups.list_rules(conn, team_id)) >= MAX_RULES:
            raise InvalidInput(f"a team has at most {MAX_RULES} top-up rules", field="below")
        rule = TopUpRule(new_id(now), team_id, below, credits, expires_days, max_per_period, now)
        topups.insert_rule(conn, rule)
    return rule


def list_rules(db: Database, team_id: str) -> list[tuple[TopUpRule, Instant | None, int]]:
    """The team's rules, each with the period its count is of and how many it granted then."""
    with db.read() as conn:
        teams.require_team(conn, team_id)
        return topups.list_rules(conn, team_id)


def remove_rule(db: Database, team_id: str, rule_id: str) -> None:
    with db.write() as conn:
        if not topups.delete_rule(conn, team_id, rule_id):
            raise NotFound(f"Top-up rule {rule_id} not found", ruleId=rule_id)
