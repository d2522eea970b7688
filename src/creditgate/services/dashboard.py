"""What the dashboard shows, read through the services the account and admin APIs answer from.

Every figure of a team's page is one the account API (`credit-usage`, `historical?byApiKey=true`,
`queue-status`, `activity`) or the admin API (`/admin/teams/{id}/keys`, `/balance`) answers for
the same moment, because it comes from the same service call (services/account.py,
services/keys.py). The only reads of their own are those no route makes: charges per key and UTC
day of the current period (the daily chart), the open holds one by one (queue-status counts
them), and a team's grants (operator only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from creditgate.domain import alerts as alert_rules
from creditgate.domain.alerts import EventType
from creditgate.domain.errors import NoBalance
from creditgate.domain.instants import MS_PER_DAY, Instant, floor_day
from creditgate.domain.periods import period_at
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team
from creditgate.services import account, alerts, webhooks
from creditgate.services import keys as key_service
from creditgate.services import teams as team_service
from creditgate.storage import ledger, reservations, teams, usage
from creditgate.storage.database import Database
from creditgate.storage.ledger import GrantRow
from creditgate.storage.usage import ActivityRow

CHART_DAYS = 31  # the daily chart covers at most this many days (a month's period)
ACTIVITY_SHOWN = 20
MAX_TEAMS = 1_000  # the operator's overview reads each team's figures; beyond this, page it
TOP_CONSUMERS = 10


@dataclass(frozen=True, slots=True)
class KeyLine:
    key: ApiKey
    used: int  # credits this period: historical?byApiKey=true's row for the current period
    last_use: Instant | None  # the last charge this period, if any


@dataclass(frozen=True, slots=True)
class OpenHold:
    id: str
    key_name: str
    endpoint: str | None
    job_id: str | None
    job_status: str | None  # the followed upstream job's status; None: a plain hold
    credits: int  # held when opened
    settled: int
    holding: int  # still held: credits less settled, never below zero
    slots: int  # pages it may have in flight: its share of the plan's concurrency
    created_at: Instant
    expires_at: Instant


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """Credits per UTC day of the current period, a series per key (stacked in the chart)."""

    days: list[Instant]
    series: list[tuple[str, list[int]]]  # (key name, credits per day), by key name

    def totals(self) -> list[int]:
        return [sum(s[i] for _, s in self.series) for i in range(len(self.days))]


@dataclass(frozen=True, slots=True)
class TeamView:
    team: Team
    plan: Plan
    usage: account.CreditUsage  # = credit-usage
    used: int  # this period: historical's row for the current period
    history: list[account.UsageRow]  # = historical (one row per period)
    keys: list[KeyLine]
    daily: DailyUsage
    activity: list[ActivityRow]  # = activity, newest first
    holds: list[OpenHold]
    queue: account.QueueStatus  # = queue-status


@dataclass(frozen=True, slots=True)
class TeamLine:
    """A team in the operator's overview."""

    team: Team
    plan_credits: int | None
    remaining: int | None  # None: the team has no balance record
    used: int
    running: int
    max_concurrency: int

    @property
    def percent_used(self) -> int | None:
        """Credits used this period as a whole percentage of the plan's, rounded down."""
        if not self.plan_credits:
            return None
        return self.used * 100 // self.plan_credits

    @property
    def headroom(self) -> float:
        """Remaining as a share of the plan's credits: the smaller, the nearer its limit."""
        if self.remaining is None:
            return float("inf")
        return self.remaining / self.plan_credits if self.plan_credits else float(self.remaining)


@dataclass(frozen=True, slots=True)
class Overview:
    teams: list[TeamLine]  # nearest their limit first
    top: list[TeamLine]  # most credits used this period first
    truncated: bool  # more than MAX_TEAMS teams: only the first were read


def team_view(db: Database, team_id: str, now: Instant, queued: int = 0) -> TeamView:
    """A team's page: NotFound for an unknown team. `queued`: requests waiting for a page
    slot at the gateway (the limiter's count), as queue-status counts them."""
    team, plan = account.current_team(db, team_service.get_team(db, team_id), now)
    credit = account.credit_usage(db, team, now)
    history = account.history(db, team, False, now)
    by_key = account.history(db, team, True, now)
    queue = account.queue_status(db, team, now, queued)
    recent = account.activity(db, team, now, None, ACTIVITY_SHOWN, None).rows
    team_keys = key_service.list_keys(db, team.id)
    names = {k.id: k.name for k in team_keys}
    current = period_at(team.anchor, plan.renews, now)
    used = _current_row(history, current.start if current else None)
    used_by_name = {
        r.key_name: r.credits
        for r in by_key
        if current is not None and r.start == current.start and r.key_name is not None
    }
    daily, last_use = _daily(db, team.id, names, current.start if current else None, now)
    with db.read() as conn:
        held = reservations.open_holds(conn, team.id, now)
    holds = [
        OpenHold(
            r.id,
            names.get(r.key_id, r.key_id),
            r.endpoint,
            r.job_id,
            status,
            r.amount,
            r.settled,
            max(r.amount - r.settled, 0),
            r.slots,
            r.created_at,
            r.expires_at,
        )
        for r, status in held
    ]
    lines = [KeyLine(k, used_by_name.get(k.name, 0), last_use.get(k.id)) for k in team_keys]
    return TeamView(team, plan, credit, used, history, lines, daily, recent, holds, queue)


def _current_row(history: list[account.UsageRow], start: Instant | None) -> int:
    return next((r.credits for r in history if r.start == start), 0)


def _daily(
    db: Database, team_id: str, names: dict[str, str], period_start: Instant | None, now: Instant
) -> tuple[DailyUsage, dict[str, Instant]]:
    """The current period's charges per key and UTC day, at most CHART_DAYS days back from
    today; and each key's last charge this period (within those days)."""
    if period_start is None:
        return DailyUsage([], []), {}
    today = floor_day(now)
    first = max(floor_day(period_start), today - (CHART_DAYS - 1) * MS_PER_DAY)
    days = list(range(first, today + MS_PER_DAY, MS_PER_DAY))
    with db.read() as conn:
        rows = usage.usage_per_key_day(
            conn, team_id, period_start, max(first, period_start), today + MS_PER_DAY
        )
    per_key: dict[str, list[int]] = {}
    last_use: dict[str, Instant] = {}
    for row in rows:
        key_id = row.key_id or ""
        series = per_key.setdefault(key_id, [0] * len(days))
        series[(row.day - first) // MS_PER_DAY] += row.credits
        last_use[key_id] = max(last_use.get(key_id, 0), row.last_at)
    named = sorted((names.get(k, k or "(no key)"), s) for k, s in per_key.items())
    return DailyUsage(days, named), last_use


def grants(db: Database, team_id: str) -> list[GrantRow]:
    """A team's grants, newest first (the operator's team page)."""
    team_service.get_team(db, team_id)
    with db.read() as conn:
        return ledger.recent_grants(conn, team_id)


def overview(db: Database, now: Instant) -> Overview:
    """Every team's plan, remaining credits, use this period and open jobs: the same service
    calls as `/admin/teams/{id}/balance`, `/usage` and queue-status, team by team."""
    with db.read() as conn:
        found = teams.list_teams(conn, None, MAX_TEAMS + 1)
    lines = [_line(db, t, now) for t in found[:MAX_TEAMS]]
    nearest = sorted(lines, key=lambda line: (line.headroom, line.team.name, line.team.id))
    top = sorted(lines, key=lambda line: (-line.used, line.team.name, line.team.id))
    return Overview(nearest, [t for t in top if t.used > 0][:TOP_CONSUMERS], len(found) > MAX_TEAMS)


def _line(db: Database, team: Team, now: Instant) -> TeamLine:
    team, plan = account.current_team(db, team, now)
    try:
        credit: account.CreditUsage | None = account.credit_usage(db, team, now)
    except NoBalance:
        credit = None
    history = account.history(db, team, False, now)
    current = period_at(team.anchor, plan.renews, now)
    queue = account.queue_status(db, team, now)
    return TeamLine(
        team,
        None if credit is None else credit.plan_credits,
        None if credit is None else credit.remaining,
        _current_row(history, current.start if current else None),
        queue.active,
        queue.max_concurrency,
    )


# --- alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str  # the rule's id
    condition: str  # e.g. "80% of the period's credits used", "500 credits left or fewer"
    channel: str  # where its events go: the webhook endpoints' hosts


@dataclass(frozen=True, slots=True)
class FiredAlert:
    rule: str
    fired_at: Instant
    detail: str


@dataclass(frozen=True, slots=True)
class Alerts:
    rules: list[AlertRule]
    fired: list[FiredAlert]  # newest first


def team_alerts(db: Database, team_id: str, now: Instant) -> Alerts | None:
    """The team's alert rules (services/alerts.py) and the alerts they fired, newest first, as
    the admin API's /alerts and /alerts/fired answer them."""
    del now
    endpoints = [
        e
        for e in webhooks.list_endpoints(db)
        if e.disabled_at is None
        and e.team_id in (None, team_id)
        and (e.event_types is None or str(EventType.THRESHOLD) in e.event_types)
    ]
    # The team's own endpoints by host; the operator's (every team's) unnamed: their addresses
    # are the operator's, not the team's to see.
    hosts = sorted({urlsplit(e.url).hostname or "?" for e in endpoints if e.team_id == team_id})
    if any(e.team_id is None for e in endpoints):
        hosts.append("the operator's endpoint")
    channel = ", ".join(hosts) if hosts else "no webhook endpoint"
    names = {k.id: k.name for k in key_service.list_keys(db, team_id)}
    rules = [AlertRule(r.id, _condition(r, names), channel) for r in alerts.list_rules(db, team_id)]
    fired = [
        FiredAlert(row.rule_id, row.fired_at, _detail(orjson.loads(row.payload)))
        for row in alerts.fired(db, team_id)
    ]
    return Alerts(rules, fired)


def _condition(rule: alert_rules.AlertRule, names: dict[str, str]) -> str:
    who = "" if rule.key_id is None else f" (key {names.get(rule.key_id, rule.key_id)})"
    if rule.kind is alert_rules.RuleKind.REMAINING:
        return f"{rule.threshold:,} credits left or fewer{who}"
    of = "the period's credits" if rule.key_id is None else "its cap, or the team's credits"
    return f"{rule.threshold}% of {of} used{who}"


def _detail(event: dict[str, Any]) -> str:
    data = event.get("data", {})
    if event.get("type") == str(EventType.KEY_CAP):
        return f"key {data.get('keyName')} reached its cap of {data.get('cap'):,}"
    return (
        f"{data.get('creditsUsed', 0):,} used, {data.get('remainingCredits', 0):,} left "
        f"(period from {data.get('periodStart')})"
    )
