"""The Firecrawl account routes (firecrawl-api.md §2), under /v1 and /v2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creditgate.domain.book import needs_rollover
from creditgate.domain.errors import InvalidInput, NoBalance
from creditgate.domain.instants import Instant, format_iso
from creditgate.domain.periods import Period
from creditgate.domain.pricing import TOKENS_PER_CREDIT
from creditgate.domain.teams import Team
from creditgate.services import account
from creditgate.services.account import UsageRow
from creditgate.web.auth import admit, check_token, limit_key, rate_limited
from creditgate.web.context import blocking, context, quick_read
from creditgate.web.requestlog import fields
from creditgate.web.responses import ok

MAX_ACTIVITY_LIMIT = 100
DEFAULT_ACTIVITY_LIMIT = 50


def _iso(instant: Instant | None) -> str | None:
    return None if instant is None else format_iso(instant)


async def _caller(request: Request) -> tuple[account.Snapshot, Instant]:
    """Authenticate (one read: key, team, plan, balance), then apply the rate limit."""
    ctx = context(request)
    token = check_token(request)
    now = ctx.clock()
    snap = admit(await quick_read(ctx.db, account.snapshot, ctx.db, token, now), now)
    logged = fields(request)
    logged.team, logged.key = snap.team.id, snap.key.hint
    ctx.key_uses.record(snap.key.id, now)
    await limit_key(ctx.limiter, snap.key, now)
    decision = await ctx.limiter.hit(snap.team.id, "account", ctx.account_rpm, now)
    if not decision.allowed:
        raise rate_limited(decision, now)
    return snap, now


async def _team(request: Request) -> tuple[Team, Instant]:
    snap, now = await _caller(request)
    return snap.team, now


async def _usage(request: Request, snap: account.Snapshot, now: Instant) -> account.CreditUsage:
    if needs_rollover(snap.team, now):
        return await blocking(account.credit_usage_from, context(request).db, snap, now)
    return account.credit_usage_from(context(request).db, snap, now)


def _version(request: Request) -> str:
    path: str = request.scope["path"]
    return "v1" if path.startswith("/v1/") else "v2"


USAGE_BODIES = "usage bodies"  # Database.memo: rendered usage answers, by snapshot
USAGE_BODIES_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class _Body:
    snap: account.Snapshot
    start: Instant | None
    end: Instant | None
    response: Response  # a Response holds no per-request state: it is sent again as it is


async def _usage_answer(request: Request, unit: int) -> Response:
    """The usage answer, rendered once per snapshot: while storage/snapshots.py hands out the
    same snapshot (nothing committed, nothing expired) and the billing period is the same, the
    answer is the same bytes."""
    snap, now = await _caller(request)
    version = _version(request)
    memo: dict[tuple[str, str, int], _Body] = context(request).db.memo.setdefault(USAGE_BODIES, {})
    kept = memo.get((snap.key.id, version, unit))
    if (
        kept is not None
        and kept.snap is snap
        and (kept.start is None or kept.start <= now)
        and (kept.end is None or now < kept.end)
    ):
        return kept.response
    usage = await _usage(request, snap, now)
    response = ok(data=_usage_body(request, usage, unit))
    if len(memo) >= USAGE_BODIES_KEPT:
        memo.pop(next(iter(memo)), None)
    memo[(snap.key.id, version, unit)] = _Body(snap, usage.period_start, usage.period_end, response)
    return response


def _usage_body(request: Request, usage: account.CreditUsage, unit: int) -> dict[str, Any]:
    noun = "credits" if unit == 1 else "tokens"
    values = (
        usage.remaining * unit,
        usage.plan_credits * unit,
        _iso(usage.period_start),
        _iso(usage.period_end),
    )
    if _version(request) == "v1":
        names = (f"remaining_{noun}", f"plan_{noun}", "billing_period_start", "billing_period_end")
    else:
        cap = noun.capitalize()
        names = (f"remaining{cap}", f"plan{cap}", "billingPeriodStart", "billingPeriodEnd")
    return dict(zip(names, values, strict=True))


async def credit_usage(request: Request) -> Response:
    return await _usage_answer(request, 1)


async def token_usage(request: Request) -> Response:
    try:
        return await _usage_answer(request, TOKENS_PER_CREDIT)
    except NoBalance as exc:
        raise NoBalance("Could not find token usage information") from exc


def _row(row: UsageRow, unit: int) -> dict[str, Any]:
    used = row.credits * unit
    names = ("creditsUsed", "totalCredits") if unit == 1 else ("tokensUsed", "totalTokens")
    return {
        "startDate": _iso(row.start),
        "endDate": _iso(row.end),
        "apiKey": row.key_name,
        names[0]: used,
        names[1]: used,
    }


async def _historical(request: Request, unit: int) -> Response:
    snap, now = await _caller(request)
    team = snap.team
    by_key = request.query_params.get("byApiKey") == "true"
    time_range = request.query_params.get("timeRange")
    db = context(request).db
    if time_range is not None:
        if time_range not in account.WINDOW_DAYS:
            raise InvalidInput("timeRange must be day, week, or month.")
        if by_key:
            raise InvalidInput("byApiKey cannot be combined with timeRange.")
        window = await blocking(account.usage_window, db, team, time_range, now)
        return ok(
            periods=[_row(r, unit) for r in window.rows],
            window={
                "timeRange": window.time_range,
                "binSize": window.bin_size,
                "startDate": _iso(window.start),
                "endDate": _iso(window.end),
            },
        )
    if by_key and not needs_rollover(team, now):
        periods = await quick_read(db, account.history_by_key, db, snap, now)
        return _history_by_key(periods, unit)
    if needs_rollover(team, now):  # the team's grants roll over first: a write, off the loop
        rows = await blocking(account.history_from, db, snap, by_key, now)
    else:
        rows = await quick_read(db, account.history_from, db, snap, by_key, now)
    return ok(periods=[_row(r, unit) for r in rows])


def _history_by_key(periods: list[tuple[Period, account.PeriodKeys | None]], unit: int) -> Response:
    """The answer from each period's rows encoded once: a closed period's rows are the same
    object from one request to the next (services/account.py), so is their JSON."""
    parts = []
    for period, keys in periods:
        if keys is None:
            continue
        encoded = keys.rendered.get((period.end, unit))
        if encoded is None:
            rows = [UsageRow(period.start, period.end, n, c) for n, c in keys.rows]
            encoded = orjson.dumps([_row(r, unit) for r in rows])[1:-1]
            keys.rendered[(period.end, unit)] = encoded
        parts.append(encoded)
    body = b'{"success":true,"periods":[' + b",".join(parts) + b"]}"
    return Response(body, media_type="application/json")


async def credit_history(request: Request) -> Response:
    return await _historical(request, 1)


async def token_history(request: Request) -> Response:
    return await _historical(request, TOKENS_PER_CREDIT)


async def queue_status(request: Request) -> Response:
    """Counted in pages, as Firecrawl counts them: active = the slots the team's open holds
    take; waiting = pages its jobs found beyond their slots, and requests queued for one."""
    snap, _ = await _caller(request)
    ctx = context(request)
    waiting = await blocking(account.waiting_pages, ctx.db, snap.team.id)
    waiting += await ctx.limiter.queued(snap.team.id)
    return ok(
        jobsInQueue=snap.running + waiting,
        activeJobsInQueue=snap.running,
        waitingJobsInQueue=waiting,
        maxConcurrency=snap.plan.concurrency,
        mostRecentSuccess=_iso(snap.team.last_charge_at),
    )


async def concurrency_check(request: Request) -> Response:
    snap, _ = await _caller(request)
    return ok(concurrency=snap.running, maxConcurrency=snap.plan.concurrency)


def _activity_limit(text: str | None) -> int:
    try:
        value = int(text) if text is not None else DEFAULT_ACTIVITY_LIMIT
    except ValueError:
        return DEFAULT_ACTIVITY_LIMIT
    if value < 1:
        return DEFAULT_ACTIVITY_LIMIT
    return min(value, MAX_ACTIVITY_LIMIT)


async def activity(request: Request) -> Response:
    team, now = await _team(request)
    params = request.query_params
    result = await blocking(
        account.activity,
        context(request).db,
        team,
        now,
        params.get("endpoint"),
        _activity_limit(params.get("limit")),
        params.get("cursor"),
    )
    data = [
        {
            "id": r.id,
            "endpoint": r.endpoint,
            "api_version": r.api_version,
            "created_at": format_iso(r.occurred_at),
            "target": r.target,
        }
        for r in result.rows
    ]
    return ok(data=data, cursor=result.cursor, has_more=result.cursor is not None)


ACCOUNT_ROUTES: list[tuple[str, Any, str]] = [
    ("/team/credit-usage", credit_usage, "Credits remaining in the current billing period"),
    ("/team/token-usage", token_usage, "Tokens remaining (credits x 15)"),
    ("/team/credit-usage/historical", credit_history, "Credits used per billing period"),
    ("/team/token-usage/historical", token_history, "Tokens used per billing period"),
    ("/team/queue-status", queue_status, "The team's pages in flight and waiting"),
    ("/concurrency-check", concurrency_check, "Pages in flight now and the plan's limit"),
]


def hot_routes() -> dict[str, Any]:
    """Every account route by its path (http/hot.py answers them without the router)."""
    paths = {f"/{v}{path}": endpoint for v in ("v1", "v2") for path, endpoint, _ in ACCOUNT_ROUTES}
    return {**paths, "/v2/team/activity": activity}


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for version in ("v1", "v2"):
        for path, endpoint, _summary in ACCOUNT_ROUTES:
            out.append(Route(f"/{version}{path}", endpoint, methods=["GET"]))
    out.append(Route("/v2/team/activity", activity, methods=["GET"]))
    return out
