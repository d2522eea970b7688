"""The admin API: operators and metering services, behind CREDITGATE_ADMIN_TOKEN."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from creditgate.domain.errors import STATUS, InvalidInput, LedgerError
from creditgate.domain.plans import Plan
from creditgate.http import ledger_views, schemas
from creditgate.services import (
    account,
    alerts,
    ingest,
    ledger,
    pages,
    plans,
    reservations,
    teams,
    topups,
    webhooks,
)
from creditgate.services import keys as key_service
from creditgate.services.ledger import check_idempotency_key
from creditgate.services.wire import (
    charge_json,
    delivery_json,
    endpoint_json,
    fired_json,
    grant_json,
    iso,
    key_json,
    plan_json,
    rule_json,
    team_json,
    topup_json,
    usage_json,
)
from creditgate.web.auth import require_admin
from creditgate.web.body import instant, parse, read_json
from creditgate.web.context import AppContext, blocking, context
from creditgate.web.errors import HTTPError
from creditgate.web.requestlog import fields
from creditgate.web.responses import ok

PAGE_QUERY = ("limit", "cursor")
# The query parameters each route takes; any other, on any admin route, is a 400.
QUERY: dict[tuple[str, str], tuple[str, ...]] = {
    ("GET", "/admin/plans"): PAGE_QUERY,
    ("GET", "/admin/teams"): (*PAGE_QUERY, "name"),
    ("GET", "/admin/teams/{team_id}/keys"): PAGE_QUERY,
    ("GET", "/admin/teams/{team_id}/usage"): ("byKey",),
    ("GET", "/admin/webhooks"): ("teamId",),
    ("GET", "/admin/webhooks/{endpoint_id}/deliveries"): PAGE_QUERY,
}


async def _admin(request: Request) -> AppContext:
    """The admin token first, then the query: only the parameters this route takes, once each."""
    ctx = context(request)
    require_admin(request, ctx.admin_token)
    allowed: tuple[str, ...] = getattr(request.state, "query", ())
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name not in allowed:
            takes = f"allowed: {', '.join(allowed)}" if allowed else "this route takes none"
            raise InvalidInput(
                f"Bad Request: {name}: unknown query parameter ({takes})", field=name
            )
        if name in seen:
            raise InvalidInput(f"Bad Request: {name}: given more than once", field=name)
        seen.add(name)
    return ctx


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidInput(f"Bad Request: {name}: must be true or false", field=name)
    return value == "true"


def _page_query(request: Request) -> tuple[int, str | None]:
    text = request.query_params.get("limit")
    limit = pages.DEFAULT_LIMIT
    if text is not None:
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= pages.MAX_LIMIT):
            raise InvalidInput(
                f"Bad Request: limit: must be an integer from 1 to {pages.MAX_LIMIT}",
                field="limit",
            )
        limit = int(text)
    return limit, request.query_params.get("cursor")


def _page(rows: list[dict[str, Any]], cursor: str | None) -> Response:
    return ok(data=rows, cursor=cursor, hasMore=cursor is not None)


async def _body(request: Request, ctx: AppContext) -> Any:
    return await read_json(request, ctx.max_body_bytes)


def _replay_headers(replayed: bool) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if replayed else {}


def _created(data: dict[str, Any], replayed: bool) -> Response:
    """201 for a new write; 200 with the first result for a replay of an idempotent one."""
    return ok(data=data, status=200 if replayed else 201, headers=_replay_headers(replayed))


# --- teams ----------------------------------------------------------------------------------


async def create_team(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.TeamIn, await _body(request, ctx))
    team = await blocking(
        teams.create_team,
        ctx.db,
        body.name,
        ctx.clock(),
        plan_id=body.plan,
        anchor=instant(body.anchor, "anchor"),
        allow_overage=body.allowOverage,
    )
    return ok(data=team_json(team), status=201)


async def list_teams(request: Request) -> Response:
    ctx = await _admin(request)
    name = request.query_params.get("name")
    if name is not None:  # names are unique: one team or none (the CLI's name lookup)
        named = await blocking(teams.named, ctx.db, name)
        return _page([team_json(t) for t in named], None)
    found = await blocking(teams.page_teams, ctx.db, *_page_query(request))
    return _page([team_json(t) for t in found.items], found.cursor)


async def get_team(request: Request) -> Response:
    ctx = await _admin(request)
    team = await blocking(teams.get_team, ctx.db, request.path_params["team_id"])
    return ok(data=team_json(team))


async def patch_team(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.TeamPatch, await _body(request, ctx))
    _patch(body)
    team = await blocking(
        teams.update_team,
        ctx.db,
        request.path_params["team_id"],
        ctx.clock(),
        suspended=body.suspended,
        allow_overage=body.allowOverage,
        plan_id=body.plan,
        name=body.name,
        plan_now=bool(body.now),
    )
    return ok(data=team_json(team))


async def team_balance(request: Request) -> Response:
    ctx = await _admin(request)
    team = await blocking(teams.get_team, ctx.db, request.path_params["team_id"])
    usage = await blocking(account.credit_usage, ctx.db, team, ctx.clock())
    return ok(
        data={
            "remainingCredits": usage.remaining,
            "planCredits": usage.plan_credits,
            "billingPeriodStart": iso(usage.period_start),
            "billingPeriodEnd": iso(usage.period_end),
        }
    )


async def team_usage(request: Request) -> Response:
    ctx = await _admin(request)
    by_key = _flag(request, "byKey")
    team = await blocking(teams.get_team, ctx.db, request.path_params["team_id"])
    rows = await blocking(account.history, ctx.db, team, by_key, ctx.clock(), every_period=True)
    return ok(data=[usage_json(r) for r in rows])


# --- keys -----------------------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.KeyIn, await _body(request, ctx))
    created = await blocking(
        key_service.create_key,
        ctx.db,
        request.path_params["team_id"],
        ctx.clock(),
        name=body.name,
        cap=body.cap,
        expires_at=instant(body.expiresAt, "expiresAt"),
        rpm=body.rpm,
        metadata=body.metadata,
    )
    return ok(data={**key_json(created.key), "key": created.secret}, status=201)


async def list_keys(request: Request) -> Response:
    ctx = await _admin(request)
    team_id = request.path_params["team_id"]
    found = await blocking(key_service.page_keys, ctx.db, team_id, *_page_query(request))
    return _page([key_json(k) for k in found.items], found.cursor)


async def revoke_key(request: Request) -> Response:
    ctx = await _admin(request)
    key = await blocking(key_service.revoke_key, ctx.db, request.path_params["key_id"], ctx.clock())
    return ok(data=key_json(key))


# --- key lifecycle (issue #11): update, rotate ------------------------------------------------


async def update_key(request: Request) -> Response:
    """Change the fields named (metadata, rpm, expiresAt); null clears one."""
    ctx = await _admin(request)
    body = parse(schemas.KeyPatch, await _body(request, ctx))
    given = body.model_fields_set
    if not given:
        raise InvalidInput(
            "Bad Request: nothing to update: give at least one of "
            + ", ".join(type(body).model_fields)
        )
    changes: dict[str, Any] = {}
    if "metadata" in given:
        changes["metadata"] = body.metadata
    if "rpm" in given:
        changes["rpm"] = body.rpm
    if "expiresAt" in given:
        changes["expires_at"] = instant(body.expiresAt, "expiresAt")
    key = await blocking(
        key_service.update_key, ctx.db, request.path_params["key_id"], ctx.clock(), **changes
    )
    return ok(data=key_json(key))


async def rotate_key(request: Request) -> Response:
    """A new key (its secret shown once) takes the old one's place; the old one works for
    overlapSeconds more, then expires."""
    ctx = await _admin(request)
    headers = request.headers
    empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    raw = {} if empty else await _body(request, ctx)  # the body is optional here
    body = parse(schemas.KeyRotateIn, raw)
    rotation = await blocking(
        key_service.rotate_key,
        ctx.db,
        request.path_params["key_id"],
        ctx.clock(),
        body.overlapSeconds,
    )
    new = rotation.new
    return ok(
        data={**key_json(new.key), "key": new.secret, "replaced": key_json(rotation.old)},
        status=201,
    )


# --- plans ----------------------------------------------------------------------------------


def _plan(plan_id: str, body: schemas.PlanIn | schemas.PlanPut) -> Plan:
    if body.interval not in ("month", "year", "once"):
        raise InvalidInput("interval must be one of: month, year, once", field="interval")
    return Plan(
        plan_id,
        body.credits,
        body.interval,  # type: ignore[arg-type]
        body.concurrency,
        body.scrapeRpm,
        body.crawlRpm,
    )


def _patch(body: schemas.Body) -> None:
    """A PATCH changes the fields it names: naming none is a mistake, and null is no value."""
    for name in sorted(body.model_fields_set):
        if getattr(body, name) is None:
            raise InvalidInput(f"Bad Request: {name}: must not be null", field=name)
    if not body.model_fields_set:
        raise InvalidInput(
            "Bad Request: nothing to update: give at least one of "
            + ", ".join(type(body).model_fields)
        )


async def list_plans(request: Request) -> Response:
    ctx = await _admin(request)
    found = await blocking(plans.page_plans, ctx.db, *_page_query(request))
    return _page([plan_json(p) for p in found.items], found.cursor)


async def create_plan(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.PlanIn, await _body(request, ctx))
    plan = _plan(body.id, body)
    return ok(
        data=plan_json(await blocking(plans.create_plan, ctx.db, plan, ctx.clock())), status=201
    )


async def put_plan(request: Request) -> Response:
    """Replace the plan whole: every field must be given, so none is reset by omission."""
    ctx = await _admin(request)
    plan_id = request.path_params["plan_id"]
    body = parse(schemas.PlanPut, await _body(request, ctx))
    if body.id is not None and body.id != plan_id:
        raise InvalidInput(f"Bad Request: id: must be the plan in the path, {plan_id}", field="id")
    plan = _plan(plan_id, body)
    return ok(data=plan_json(await blocking(plans.update_plan, ctx.db, plan, ctx.clock())))


async def patch_plan(request: Request) -> Response:
    """Change only the fields given; the others keep their values."""
    ctx = await _admin(request)
    body = parse(schemas.PlanPatch, await _body(request, ctx))
    _patch(body)
    plan = await blocking(
        plans.change_plan,
        ctx.db,
        request.path_params["plan_id"],
        ctx.clock(),
        credits=body.credits,
        interval=body.interval,
        concurrency=body.concurrency,
        scrape_rpm=body.scrapeRpm,
        crawl_rpm=body.crawlRpm,
    )
    return ok(data=plan_json(plan))


# --- credits --------------------------------------------------------------------------------


async def grant(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.GrantIn, await _body(request, ctx))
    team_id = request.path_params["team_id"]
    grant_request = ledger.GrantRequest(
        team_id=team_id,
        credits=body.credits,
        kind=body.kind,
        expires_at=instant(body.expiresAt, "expiresAt"),
        note=body.note,
        idempotency_key=body.idempotencyKey,
    )
    result: ledger.GrantResult = await ctx.write(ledger.Grant(grant_request, ctx.clock()), team_id)
    return _created(grant_json(result), result.replayed)


def charge_request(body: schemas.ChargeIn) -> ledger.ChargeRequest:
    return ledger.ChargeRequest(
        key=body.key_ref(),
        credits=body.credits,
        at=instant(body.at, "at"),
        endpoint=body.endpoint,
        api_version=body.apiVersion,
        job_id=body.jobId,
        target=body.target,
        idempotency_key=body.idempotencyKey,
    )


async def charge(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.ChargeIn, await _body(request, ctx))
    result: ledger.ChargeResult = await ctx.write(ledger.Charge(charge_request(body), ctx.clock()))
    logged = fields(request)
    logged.team = result.team_id
    if not result.replayed:
        logged.charged = result.credits
    return _created(charge_json(result), result.replayed)


async def charge_batch(request: Request) -> Response:
    ctx = await _admin(request)
    data = await read_json(request, ctx.max_body_bytes * 4)
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise InvalidInput("Bad Request: events: must be a list of charges", field="events")
    if len(events) > ctx.max_batch_events:
        raise HTTPError(413, f"Too many events: at most {ctx.max_batch_events} per request.")
    parsed: list[ledger.ChargeRequest | LedgerError] = []
    for event in events:
        try:
            parsed.append(charge_request(parse(schemas.ChargeIn, event)))
        except LedgerError as exc:
            parsed.append(exc)
    outcomes = await blocking(ingest.charge_batch, ctx.db, parsed, ctx.clock())
    return ok(data=[_outcome_json(o) for o in outcomes])


def _outcome_json(outcome: ingest.EventOutcome) -> dict[str, Any]:
    out: dict[str, Any] = {"index": outcome.index, "status": outcome.status}
    if outcome.result is not None:
        out["charge"] = charge_json(outcome.result)
    if outcome.error is not None:
        out.update(
            code=STATUS[type(outcome.error)], error=outcome.error.message, **outcome.error.details
        )
    return out


# --- reservations ---------------------------------------------------------------------------


def reservation_json(view: reservations.ReservationView) -> dict[str, Any]:
    return {
        "id": view.id,
        "teamId": view.team_id,
        "keyId": view.key_id,
        "credits": view.credits,
        "settled": view.settled,
        "holding": view.holding,
        "status": view.status,
        "createdAt": iso(view.created_at),
        "expiresAt": iso(view.expires_at),
        "closedAt": iso(view.closed_at),
        "overage": view.overage,
        "remainingCredits": view.remaining_credits,
        "slots": view.slots,
    }


async def reserve(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.ReserveIn, await _body(request, ctx))
    hold = reservations.ReserveRequest(
        key=body.key_ref(),
        credits=body.credits,
        ttl_ms=body.ttlSeconds * 1000,
        endpoint=body.endpoint,
        api_version=body.apiVersion,
        job_id=body.jobId,
        target=body.target,
        idempotency_key=body.idempotencyKey,
    )
    view: reservations.ReservationView = await ctx.write(reservations.Reserve(hold, ctx.clock()))
    return _created(reservation_json(view), view.replayed)


async def settle(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.SettleIn, await _body(request, ctx))
    settlement = reservations.Settle(
        request.path_params["reservation_id"],
        body.credits,
        ctx.clock(),
        final=body.final,
        idempotency_key=body.idempotencyKey,
    )
    view: reservations.ReservationView = await ctx.write(settlement)
    return ok(data=reservation_json(view), headers=_replay_headers(view.replayed))


async def release(request: Request) -> Response:
    ctx = await _admin(request)
    raw = await _body(request, ctx) if request.headers.get("content-length", "0") != "0" else {}
    body = parse(schemas.ReleaseIn, raw)
    check_idempotency_key(body.idempotencyKey)
    release_op = reservations.Release(request.path_params["reservation_id"], ctx.clock(), None)
    view: reservations.ReservationView = await ctx.write(release_op)
    return ok(data=reservation_json(view))


async def get_reservation(request: Request) -> Response:
    ctx = await _admin(request)
    view = await blocking(
        reservations.get, ctx.db, request.path_params["reservation_id"], ctx.clock()
    )
    return ok(data=reservation_json(view))


async def check(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.CheckIn, await _body(request, ctx))
    verdict = await blocking(reservations.check, ctx.db, body.key_ref(), body.credits, ctx.clock())
    return ok(
        data={
            "allowed": verdict.allowed,
            "requiredCredits": verdict.required,
            "remainingCredits": verdict.remaining,
            "teamRemainingCredits": verdict.team_remaining,
            "keyRemainingCredits": verdict.key_remaining,
            "limitedBy": verdict.limited_by,
        }
    )


# --- alerts and webhooks -------------------------------------------------------------------


async def _no_body(request: Request, ctx: AppContext) -> None:
    """A route that takes no body: one given must be empty or `{}` (unknown fields refused)."""
    headers = request.headers
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        parse(schemas.Empty, await _body(request, ctx))


async def list_alerts(request: Request) -> Response:
    ctx = await _admin(request)
    rules = await blocking(alerts.list_rules, ctx.db, request.path_params["team_id"])
    return ok(data=[rule_json(r) for r in rules])


async def add_alert(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.AlertRuleIn, await _body(request, ctx))
    rule = await blocking(
        alerts.add_rule,
        ctx.db,
        request.path_params["team_id"],
        body.kind,
        body.threshold,
        ctx.clock(),
        body.keyId,
    )
    return ok(data=rule_json(rule), status=201)


async def remove_alert(request: Request) -> Response:
    ctx = await _admin(request)
    team_id, rule_id = request.path_params["team_id"], request.path_params["rule_id"]
    await blocking(alerts.remove_rule, ctx.db, team_id, rule_id)
    return ok(data={"id": rule_id, "removed": True})


async def fired_alerts(request: Request) -> Response:
    ctx = await _admin(request)
    rows = await blocking(alerts.fired, ctx.db, request.path_params["team_id"])
    return ok(data=[fired_json(r) for r in rows])


async def list_webhooks(request: Request) -> Response:
    ctx = await _admin(request)
    found = await blocking(webhooks.list_endpoints, ctx.db, request.query_params.get("teamId"))
    return ok(data=[endpoint_json(e) for e in found])


async def add_webhook(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.WebhookIn, await _body(request, ctx))
    made = await blocking(
        webhooks.add_endpoint, ctx.db, body.url, ctx.clock(), body.teamId, body.eventTypes
    )
    return ok(data=endpoint_json(made.endpoint, made.secret), status=201)


async def remove_webhook(request: Request) -> Response:
    ctx = await _admin(request)
    found = await blocking(
        webhooks.remove_endpoint, ctx.db, request.path_params["endpoint_id"], ctx.clock()
    )
    return ok(data=endpoint_json(found))


async def rotate_webhook(request: Request) -> Response:
    ctx = await _admin(request)
    await _no_body(request, ctx)
    made = await blocking(
        webhooks.rotate_secret, ctx.db, request.path_params["endpoint_id"], ctx.clock()
    )
    return ok(data=endpoint_json(made.endpoint, made.secret))


async def test_webhook(request: Request) -> Response:
    ctx = await _admin(request)
    await _no_body(request, ctx)
    endpoint_id = request.path_params["endpoint_id"]
    found = await blocking(webhooks.get_endpoint, ctx.db, endpoint_id)
    async with httpx.AsyncClient() as client:
        sent = await webhooks.send_test(ctx.db, client, endpoint_id, ctx.clock(), found)
    return ok(data={"delivered": sent.ok, "status": sent.code, "error": sent.error})


async def webhook_deliveries(request: Request) -> Response:
    ctx = await _admin(request)
    endpoint_id = request.path_params["endpoint_id"]
    found = await blocking(webhooks.page_deliveries, ctx.db, endpoint_id, *_page_query(request))
    return _page([delivery_json(d) for d in found.items], found.cursor)


async def list_topups(request: Request) -> Response:
    ctx = await _admin(request)
    found = await blocking(topups.list_rules, ctx.db, request.path_params["team_id"])
    return ok(data=[topup_json(*row) for row in found])


async def add_topup(request: Request) -> Response:
    ctx = await _admin(request)
    body = parse(schemas.TopUpIn, await _body(request, ctx))
    rule = await blocking(
        topups.add_rule,
        ctx.db,
        request.path_params["team_id"],
        body.below,
        body.credits,
        ctx.clock(),
        expires_days=body.expiresDays,
        max_per_period=body.maxPerPeriod,
    )
    return ok(data=topup_json(rule, None, 0), status=201)


async def remove_topup(request: Request) -> Response:
    ctx = await _admin(request)
    team_id, rule_id = request.path_params["team_id"], request.path_params["rule_id"]
    await blocking(topups.remove_rule, ctx.db, team_id, rule_id)
    return ok(data={"id": rule_id, "removed": True})


ADMIN_ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/admin/plans", list_plans, "List plans"),
    (
        "POST",
        "/admin/plans",
        create_plan,
        "Create a plan: credits a month (also when billed yearly), limits default if left out",
    ),
    (
        "PUT",
        "/admin/plans/{plan_id}",
        put_plan,
        "Replace a plan, every field given (applies from each team's next period)",
    ),
    (
        "PATCH",
        "/admin/plans/{plan_id}",
        patch_plan,
        "Change only the given fields of a plan (applies from each team's next period)",
    ),
    ("GET", "/admin/teams", list_teams, "List teams"),
    ("POST", "/admin/teams", create_team, "Create a team"),
    ("GET", "/admin/teams/{team_id}", get_team, "Read a team"),
    ("PATCH", "/admin/teams/{team_id}", patch_team, "Suspend, resume or change a team"),
    ("GET", "/admin/teams/{team_id}/balance", team_balance, "A team's balance now"),
    ("GET", "/admin/teams/{team_id}/usage", team_usage, "A team's usage per period (?byKey=true)"),
    ("GET", "/admin/teams/{team_id}/keys", list_keys, "List a team's API keys"),
    ("POST", "/admin/teams/{team_id}/keys", create_key, "Create an API key (shown once)"),
    ("POST", "/admin/keys/{key_id}/revoke", revoke_key, "Revoke an API key"),
    ("PATCH", "/admin/keys/{key_id}", update_key, "Change a key's metadata, rpm or expiry"),
    (
        "POST",
        "/admin/keys/{key_id}/rotate",
        rotate_key,
        "Rotate a key: a new secret (shown once) under its name, cap, rpm and metadata; the old "
        "key works for overlapSeconds more, then expires",
    ),
    ("POST", "/admin/teams/{team_id}/grants", grant, "Grant credits (pack, coupon, top-up)"),
    ("POST", "/admin/charges", charge, "Record a charge (idempotent, may be backdated)"),
    ("POST", "/admin/charges/batch", charge_batch, "Record up to 1,000 charges"),
    (
        "POST",
        "/admin/check",
        check,
        "May this key spend N credits now? Both remainders: the team's (credits less holds) and "
        "the key's (cap less usage and holds; null without a cap), allowed or not (no write)",
    ),
    ("POST", "/admin/reservations", reserve, "Hold credits for work of unknown cost"),
    ("GET", "/admin/reservations/{reservation_id}", get_reservation, "Read a reservation"),
    (
        "POST",
        "/admin/reservations/{reservation_id}/settle",
        settle,
        "Charge what the work cost (partial, repeatable; final closes)",
    ),
    (
        "POST",
        "/admin/reservations/{reservation_id}/release",
        release,
        "Release a reservation without charging",
    ),
    ("GET", "/admin/teams/{team_id}/alerts", list_alerts, "A team's alert rules"),
    (
        "POST",
        "/admin/teams/{team_id}/alerts",
        add_alert,
        "Add an alert rule: percent of the period's credits (or a key's cap) used, or credits "
        "remaining; fires once per period",
    ),
    (
        "DELETE",
        "/admin/teams/{team_id}/alerts/{rule_id}",
        remove_alert,
        "Remove an alert rule",
    ),
    ("GET", "/admin/teams/{team_id}/alerts/fired", fired_alerts, "Alerts fired, newest first"),
    ("GET", "/admin/teams/{team_id}/topups", list_topups, "A team's automatic top-up rules"),
    (
        "POST",
        "/admin/teams/{team_id}/topups",
        add_topup,
        "Add a top-up rule: when a charge leaves fewer than `below` credits, grant `credits` "
        "(expiring after `expiresDays`), at most `maxPerPeriod` times a period",
    ),
    (
        "DELETE",
        "/admin/teams/{team_id}/topups/{rule_id}",
        remove_topup,
        "Remove a top-up rule",
    ),
    ("GET", "/admin/webhooks", list_webhooks, "Webhook endpoints (?teamId= for one team's)"),
    (
        "POST",
        "/admin/webhooks",
        add_webhook,
        "Add a webhook endpoint for one team's events or every team's (its secret shown once)",
    ),
    ("DELETE", "/admin/webhooks/{endpoint_id}", remove_webhook, "Disable a webhook endpoint"),
    (
        "POST",
        "/admin/webhooks/{endpoint_id}/rotate",
        rotate_webhook,
        "A new secret (shown once); the old one also signs for 24 hours",
    ),
    ("POST", "/admin/webhooks/{endpoint_id}/test", test_webhook, "Send a webhook.test event now"),
    (
        "GET",
        "/admin/webhooks/{endpoint_id}/deliveries",
        webhook_deliveries,
        "The endpoint's deliveries, newest first: status, attempts, last answer",
    ),
]


# --- the ledger on view and its export (http/ledger_views.py) ------------------------------

QUERY.update(ledger_views.QUERY)
ADMIN_ROUTES += ledger_views.routes(_admin)


def routes() -> list[BaseRoute]:
    grouped: dict[str, dict[str, Any]] = {}
    for method, path, endpoint, _summary in ADMIN_ROUTES:
        grouped.setdefault(path, {})[method] = endpoint
    out: list[BaseRoute] = []
    for path, by_method in grouped.items():
        out.append(Route(path, _dispatch(path, by_method), methods=list(by_method)))
    return out


def _dispatch(path: str, by_method: dict[str, Any]) -> Any:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD
        handler = by_method[method]
        request.state.query = QUERY.get((method, path), ())  # checked by _admin
        response: Response = await handler(request)
        return response

    return endpoint
