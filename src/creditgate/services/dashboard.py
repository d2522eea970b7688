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
from creditgate.domain.errors import InvalidInput, NoBalance, NotFound
from creditgate.domain.instants import MS_PER_DAY, Instant, floor_day, format_iso
from creditgate.domain.periods import period_at
from creditgate.domain.plans import Plan
from creditgate.domain.teams import ApiKey, Team
from creditgate.services import account, alerts, export, ledger_views, plans, webhooks
from creditgate.services import keys as key_service
from creditgate.services import teams as team_service
from creditgate.storage import balances as ledger
from creditgate.storage import entry_pages as views
from creditgate.storage import reservation_rows as reservations
from creditgate.storage import team_rows as teams
from creditgate.storage import usage, used_forms
from creditgate.storage.balances import GrantRow
from creditgate.storage.database import Database
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


# --- a date range, the entries in it, and the forms that act -------------------------------

MAX_RANGE_DAYS = 92  # the daily chart's widest range (a quarter)
ENTRIES_SHOWN = 200  # ledger entries listed on the page; the CSV download has them all
FORM_MAX_AGE_MS = 12 * 3600 * 1000  # a used form id is kept this long (the session's life)


@dataclass(frozen=True, slots=True)
class DayRange:
    """UTC days `first` to `last`, both included (midnights); `end` is the midnight after."""

    first: Instant
    last: Instant

    @property
    def end(self) -> Instant:
        return self.last + MS_PER_DAY

    @property
    def days(self) -> list[Instant]:
        return list(range(self.first, self.end, MS_PER_DAY))

    @property
    def start_iso(self) -> str:
        return format_iso(self.first)

    @property
    def end_iso(self) -> str:
        return format_iso(self.end)


def day_range(
    first: Instant | None, last: Instant | None, default_first: Instant, now: Instant
) -> DayRange:
    """The range asked for (midnights), by default from `default_first`'s day to today; a
    range ending before it starts or wider than MAX_RANGE_DAYS is refused, naming the field."""
    last_day = floor_day(now if last is None else last)
    first_day = floor_day(default_first if first is None else first)
    if first is None and last_day - first_day >= MAX_RANGE_DAYS * MS_PER_DAY:
        first_day = last_day - (MAX_RANGE_DAYS - 1) * MS_PER_DAY
    if last_day < first_day:
        raise InvalidInput("to: must not be before from", field="to")
    if last_day - first_day >= MAX_RANGE_DAYS * MS_PER_DAY:
        raise InvalidInput(f"from: the range is at most {MAX_RANGE_DAYS} days", field="from")
    return DayRange(first_day, last_day)


def period_start(db: Database, team_id: str, now: Instant) -> Instant:
    """The start of the team's current billing period (its anchor's day when none)."""
    team, plan = account.current_team(db, team_service.get_team(db, team_id), now)
    current = period_at(team.anchor, plan.renews, now)
    return team.anchor if current is None else current.start


def daily_in(db: Database, team_id: str, days: DayRange) -> DailyUsage:
    """Credits per key and UTC day in the range: the rows of the `usage by=day` export for the
    same range (so the chart and its CSV agree), a series per key name."""
    found = export.prepare(db, team_id, "usage", "day", "csv", days.start_iso, days.end_iso)
    per_key: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for rows in export.batches(db, found):
        for row in rows:
            key_id = row.key_id or ""
            names[key_id] = row.key_name or key_id or "(no key)"
            series = per_key.setdefault(key_id, [0] * len(days.days))
            series[(row.day_ms - days.first) // MS_PER_DAY] += row.credits
    named = sorted((names[k], s) for k, s in per_key.items())
    return DailyUsage(days.days, named)


@dataclass(frozen=True, slots=True)
class Entries:
    rows: list[dict[str, Any]]  # the admin API's entry objects, newest first
    truncated: bool  # more entries in the range than shown (the CSV has them all)


def entries_in(db: Database, team_id: str, days: DayRange) -> Entries:
    """The team's ledger entries in the range, newest first, at most ENTRIES_SHOWN: the
    `/admin/teams/{id}/entries` listing's rows (and the `what=entries` export's) for the same
    range, read backwards on the listing's index (however many the range holds)."""
    listing = ledger_views.ENTRIES
    found = ledger_views.filters(listing, days.start_iso, days.end_iso)
    ledger_views.require_team(db, team_id)
    with db.read() as conn:
        got = views.rows(conn, listing.view, team_id, found, None, ENTRIES_SHOWN + 1, True)
    return Entries(ledger_views.as_json(listing, got[:ENTRIES_SHOWN]), len(got) > ENTRIES_SHOWN)


def claim_form(db: Database, form_id: str, now: Instant) -> bool:
    """Record a dashboard form as acted on: False when it already was (a double submit or a
    replay). Ids older than a session are dropped on the way."""
    with db.write() as conn:
        used_forms.forget_before(conn, now - FORM_MAX_AGE_MS)
        return used_forms.claim(conn, form_id, now)


def team_key(db: Database, team_id: str, key_id: str) -> ApiKey:
    """A key of this team: NotFound for any other key, as for one that does not exist (a
    team's session acts on its own keys only, and learns nothing of others')."""
    for key in key_service.list_keys(db, team_id):
        if key.id == key_id:
            return key
    raise NotFound(f"API key {key_id} not found", keyId=key_id)


def plan_ids(db: Database) -> list[str]:
    """Every plan's id (the plan-change form's choices)."""
    return [p.id for p in plans.list_plans(db)]
