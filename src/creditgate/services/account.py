"""What the Firecrawl account routes report, read from the ledger's rollups."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Literal

from creditgate.domain.book import needs_rollover, remaining_of
from creditgate.domain.errors import InvalidInput, NoBalance, NotFound
from creditgate.domain.instants import (
    MS_PER_DAY,
    MS_PER_HOUR,
    Instant,
    floor_day,
    floor_hour,
    format_iso,
    parse_iso,
)
from creditgate.domain.keys import hash_key
from creditgate.domain.periods import Period, period_at, periods_between
from creditgate.domain.plans import Plan
from creditgate.domain.teams import Team
from creditgate.services.ledger import roll_forward_now
from creditgate.storage import (
    balances as ledger,
)
from creditgate.storage import (
    job_rows as jobs,
)
from creditgate.storage import (
    key_rows as keys,
)
from creditgate.storage import (
    plan_rows as plans,
)
from creditgate.storage import (
    queued_rows as queued_starts,
)
from creditgate.storage import (
    reservation_rows as reservations,
)
from creditgate.storage import (
    snapshots,
    usage,
)
from creditgate.storage import (
    team_rows as teams,
)
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

TimeRange = Literal["day", "week", "month"]
WINDOW_DAYS: dict[str, int] = {"day": 1, "week": 7, "month": 30}
ACTIVITY_ENDPOINTS = (
    "scrape",
    "crawl",
    "batch_scrape",
    "search",
    "extract",
    "llmstxt",
    "deep_research",
    "map",
    "agent",
    "browser",
    "interact",
)
ACTIVITY_WINDOW_MS = 24 * MS_PER_HOUR


@dataclass(frozen=True, slots=True)
class CreditUsage:
    remaining: int
    plan_credits: int
    period_start: Instant | None
    period_end: Instant | None


@dataclass(frozen=True, slots=True)
class UsageRow:
    start: Instant
    end: Instant | None
    key_name: str | None
    credits: int


@dataclass(frozen=True, slots=True)
class UsageWindow:
    time_range: str
    bin_size: str
    start: Instant
    end: Instant
    rows: list[UsageRow]


@dataclass(frozen=True, slots=True)
class QueueStatus:
    active: int
    waiting: int
    max_concurrency: int
    most_recent_success: Instant | None


@dataclass(frozen=True, slots=True)
class Activity:
    rows: list[usage.ActivityRow]
    cursor: str | None


Snapshot = snapshots.Snapshot


def snapshot(db: Database, token: str, now: Instant) -> snapshots.Snapshot | None:
    """The caller's key, team, plan and balance in one read; None for an unknown token."""
    return snapshots.snapshot(db, hash_key(token), now)


def credit_usage_from(db: Database, snap: snapshots.Snapshot, now: Instant) -> CreditUsage:
    """Credit usage from a snapshot, or from a fresh read when a period or grant rolled over."""
    if needs_rollover(snap.team, now):
        return credit_usage(db, snap.team, now)
    if not snap.has_grants:
        raise NoBalance("Could not find credit usage information")
    current = period_at(snap.team.anchor, snap.plan.renews, now)
    return CreditUsage(
        remaining=remaining_of(snap.live_balance, snap.held),
        plan_credits=snap.plan.credits if snap.plan_grant is None else snap.plan_grant,
        period_start=None if current is None else current.start,
        period_end=None if current is None else current.end,
    )


def current_team(db: Database, team: Team, now: Instant) -> tuple[Team, Plan]:
    """The team with its grants up to date (a write only when a period or grant rolled over)."""
    if needs_rollover(team, now):
        return roll_forward_now(db, team.id, now)
    with db.read() as conn:
        plan = plans.get_plan(conn, team.plan_id)
    if plan is None:
        raise NotFound(f"Plan {team.plan_id} not found")
    return team, plan


def credit_usage(db: Database, team: Team, now: Instant) -> CreditUsage:
    team, plan = current_team(db, team, now)
    current = period_at(team.anchor, plan.renews, now)
    with db.read() as conn:
        remaining = ledger.live_balance(conn, team.id, now)
        held = reservations.team_hold(conn, team.id, now)
        granted = (
            None if current is None else ledger.plan_grant_amount(conn, team.id, current.start)
        )
    if remaining is None:
        raise NoBalance("Could not find credit usage information")
    return CreditUsage(
        remaining=remaining_of(remaining, held),
        plan_credits=plan.credits if granted is None else granted,
        period_start=None if current is None else current.start,
        period_end=None if current is None else current.end,
    )


def history(
    db: Database, team: Team, by_key: bool, now: Instant, *, every_period: bool = False
) -> list[UsageRow]:
    """One row per billing period from the first with usage to the current one. By key, one row
    per period and key that used credits (as the Firecrawl routes answer); with `every_period`
    (the operator's views), a period no key used is a row too, with no key and 0 credits, so
    both views list the same periods."""
    team, plan = current_team(db, team, now)
    with db.read() as conn:
        first = usage.first_usage_period(conn, team.id)
        if first is None:
            return []
        periods = periods_between(team.anchor, plan.renews, first, now)
        if not by_key:
            totals = usage.usage_per_period(conn, team.id)
            return [UsageRow(p.start, p.end, None, totals.get(p.start, 0)) for p in periods]
        per_key = usage.usage_per_key(conn, team.id)
        names = keys.key_names(conn, team.id)
    rows: list[UsageRow] = []
    by_period: dict[Instant, list[tuple[str, int]]] = {}
    for start, key_id, credits in per_key:
        by_period.setdefault(start, []).append((names.get(key_id, key_id), credits))
    for p in periods:
        for name, credits in sorted(by_period.get(p.start, [])):
            rows.append(UsageRow(p.start, p.end, name, credits))
        if every_period and p.start not in by_period:
            rows.append(UsageRow(p.start, p.end, None, 0))
    return rows


def history_from(
    db: Database, snap: snapshots.Snapshot, by_key: bool, now: Instant
) -> list[UsageRow]:
    """History for an authenticated caller: one read of the rollups, unless a period or grant
    rolled over since (then the general path, which brings the team up to date first)."""
    if needs_rollover(snap.team, now):
        return history(db, snap.team, by_key, now)
    found = usage.usage_rows(db, snap.team.id, by_key)
    if not found:
        return []
    periods = periods_between(snap.team.anchor, snap.plan.renews, min(r[0] for r in found), now)
    by_period: dict[Instant, list[tuple[str | None, int]]] = {}
    for start, name, credits in found:
        by_period.setdefault(start, []).append((name, credits))
    if not by_key:
        return [
            UsageRow(p.start, p.end, None, sum(c for _, c in by_period.get(p.start, [])))
            for p in periods
        ]
    return [
        UsageRow(p.start, p.end, name, credits)
        for p in periods
        for name, credits in sorted(by_period.get(p.start, []), key=lambda r: str(r[0]))
    ]


HISTORY_MEMO = "history by key"  # Database.memo: team id -> {period start: PeriodKeys}
HISTORY_TEAMS_KEPT = 1_000


@dataclass(frozen=True, slots=True)
class PeriodKeys:
    """One billing period's usage by key: (key name, credits), sorted by name.

    Kept in memory between requests and handed out again, the same object, while the period's
    rollup says it is unchanged; `rendered` is where a caller may keep what it derives from the
    rows (the HTTP layer: their encoded JSON), for as long as the object lives."""

    start: Instant
    rows: tuple[tuple[str, int], ...]
    signature: tuple[int, int]  # (credits, rows): see usage.period_signatures
    rendered: dict[object, bytes] = field(default_factory=dict, compare=False)


def history_by_key(
    db: Database, snap: snapshots.Snapshot, now: Instant
) -> list[tuple[Period, PeriodKeys | None]]:
    """Every period from the first with usage to the current one, each with its usage by key
    (None: no key used credits in it), for an authenticated caller whose team needs no
    rollover (history_from otherwise).

    One statement of one row per period says which periods changed since this process last
    read them (usage.period_signatures); only those, and the ones after them, are read again.
    A late charge into a closed period changes that period's credits, or its count of keys
    when it costs 0, so it is read again at the next request, whichever process recorded it.
    """
    team = snap.team
    signatures = usage.period_signatures(db, team.id)
    if not signatures:
        return []
    memo: dict[str, dict[Instant, PeriodKeys]] = db.memo.setdefault(HISTORY_MEMO, {})
    kept = memo.get(team.id, {})
    changed = [s for s, sig in signatures.items() if s not in kept or kept[s].signature != sig]
    if changed:
        kept = {s: p for s, p in kept.items() if s < min(changed)}
        by_period: dict[Instant, list[tuple[str, int]]] = {}
        for start, name, credits in usage.key_usage_since(db, team.id, min(changed)):
            by_period.setdefault(start, []).append((name, credits))
        for start, rows in by_period.items():
            signature = (sum(c for _, c in rows), len(rows))
            kept[start] = PeriodKeys(start, tuple(sorted(rows, key=lambda r: r[0])), signature)
        memo.pop(team.id, None)
        if len(memo) >= HISTORY_TEAMS_KEPT:
            memo.pop(next(iter(memo)), None)
        memo[team.id] = kept
    periods = periods_between(team.anchor, snap.plan.renews, min(signatures), now)
    return [(p, kept.get(p.start)) for p in periods]


def usage_window(db: Database, team: Team, time_range: str, now: Instant) -> UsageWindow:
    """A rolling window ending now: hourly bins for a day, daily (UTC) bins for a week or month."""
    if time_range not in WINDOW_DAYS:
        raise InvalidInput("timeRange must be day, week, or month.")
    if time_range == "day":
        bin_ms, end = MS_PER_HOUR, floor_hour(now) + MS_PER_HOUR
        count = 24
    else:
        bin_ms, end = MS_PER_DAY, floor_day(now) + MS_PER_DAY
        count = WINDOW_DAYS[time_range]
    start = end - count * bin_ms
    with db.read() as conn:
        hours = usage.usage_per_hour(conn, team.id, start, end)
    bins = [0] * count
    for hour, credits in hours.items():
        bins[(hour - start) // bin_ms] += credits
    rows = [
        UsageRow(start + i * bin_ms, start + (i + 1) * bin_ms, None, c) for i, c in enumerate(bins)
    ]
    return UsageWindow(time_range, "hour" if bin_ms == MS_PER_HOUR else "day", start, end, rows)


def queue_status(db: Database, team: Team, now: Instant, queued: int = 0) -> QueueStatus:
    """Pages in flight (the open holds' slots) and waiting: the pages the team's jobs found
    beyond their slots, and `queued` requests waiting for a slot at the gateway."""
    team, plan = current_team(db, team, now)
    with db.read() as conn:
        fresh = teams.get_team(conn, team.id) or team
        active = reservations.slots_in_use(conn, team.id, now)
        waiting = jobs.waiting_pages(conn, team.id) + queued_starts.count_queued(
            Tx.of(conn), team.id
        )
    return QueueStatus(active, waiting + queued, plan.concurrency, fresh.last_charge_at)


def waiting_pages(db: Database, team_id: str) -> int:
    """Pages the team's jobs have found and not started (they wait for one of its slots), and
    its job starts accepted and queued (one each)."""
    with db.read() as conn:
        return jobs.waiting_pages(conn, team_id) + queued_starts.count_queued(Tx.of(conn), team_id)


def activity(
    db: Database, team: Team, now: Instant, endpoint: str | None, limit: int, cursor: str | None
) -> Activity:
    if endpoint is not None and endpoint not in ACTIVITY_ENDPOINTS:
        raise InvalidInput(
            f"Invalid endpoint filter. Must be one of: {', '.join(ACTIVITY_ENDPOINTS)}"
        )
    before = None if cursor is None else decode_cursor(cursor)
    with db.read() as conn:
        rows = usage.recent_activity(
            conn, team.id, now - ACTIVITY_WINDOW_MS, endpoint, before, limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more and rows else None
    return Activity(rows, next_cursor)


def encode_cursor(at: Instant, movement_id: str) -> str:
    raw = f"{format_iso(at)}:{movement_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MOVEMENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def decode_cursor(cursor: str) -> tuple[Instant, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, movement_id = raw.rsplit(":", 1)
        if _MOVEMENT_ID.fullmatch(movement_id) is None:  # a NUL, say, must not reach the SQL
            raise ValueError(movement_id)
        return parse_iso(stamp), movement_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("Invalid cursor.") from exc
