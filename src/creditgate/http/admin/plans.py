"""Plans: list, create, replace whole, change some fields."""

from __future__ import annotations

from creditgate.domain.errors import InvalidInput
from creditgate.domain.plans import Plan as PlanRecord
from creditgate.http import schemas
from creditgate.http.admin.query import PAGE
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import plans
from creditgate.services.wire import Plan
from creditgate.web.context import blocking


def _plan(plan_id: str, body: schemas.PlanIn | schemas.PlanPut) -> PlanRecord:
    if body.interval not in ("month", "year", "once"):
        raise InvalidInput("interval must be one of: month, year, once", field="interval")
    return PlanRecord(
        plan_id,
        body.credits,
        body.interval,  # type: ignore[arg-type]
        body.concurrency,
        body.scrapeRpm,
        body.crawlRpm,
    )


async def list_plans(call: Call) -> Reply:
    found = await blocking(plans.page_plans, call.ctx.db, *call.page())
    return Reply([Plan.of(p) for p in found.items], cursor=found.cursor)


async def create_plan(call: Call) -> Reply:
    body = call.parsed(schemas.PlanIn)
    plan = await blocking(plans.create_plan, call.ctx.db, _plan(body.id, body), call.ctx.clock())
    return Reply(Plan.of(plan), 201)


async def put_plan(call: Call) -> Reply:
    """Replace the plan whole: every field must be given, so none is reset by omission."""
    plan_id = call.path("plan_id")
    body = call.parsed(schemas.PlanPut)
    if body.id is not None and body.id != plan_id:
        raise InvalidInput(f"Bad Request: id: must be the plan in the path, {plan_id}", field="id")
    plan = await blocking(plans.update_plan, call.ctx.db, _plan(plan_id, body), call.ctx.clock())
    return Reply(Plan.of(plan))


async def patch_plan(call: Call) -> Reply:
    """Change only the fields given; the others keep their values."""
    body = call.parsed(schemas.PlanPatch)
    schemas.require_changes(body)
    plan = await blocking(
        plans.change_plan,
        call.ctx.db,
        call.path("plan_id"),
        call.ctx.clock(),
        credits=body.credits,
        interval=body.interval,
        concurrency=body.concurrency,
        scrape_rpm=body.scrapeRpm,
        crawl_rpm=body.crawlRpm,
    )
    return Reply(Plan.of(plan))


ROUTES = [
    AdminRoute(
        "GET", "/admin/plans", list_plans, "List plans", "listPlans", Plan, many=True, query=PAGE
    ),
    AdminRoute(
        "POST",
        "/admin/plans",
        create_plan,
        "Create a plan: credits a month (also when billed yearly), limits default if left out",
        "createPlan",
        Plan,
        body=schemas.PlanIn,
        status=CREATED,
        errors=(409,),
    ),
    AdminRoute(
        "PUT",
        "/admin/plans/{plan_id}",
        put_plan,
        "Replace a plan, every field given (applies from each team's next period)",
        "replacePlan",
        Plan,
        body=schemas.PlanPut,
        errors=NAMED,
    ),
    AdminRoute(
        "PATCH",
        "/admin/plans/{plan_id}",
        patch_plan,
        "Change only the given fields of a plan (applies from each team's next period)",
        "updatePlan",
        Plan,
        body=schemas.PlanPatch,
        errors=NAMED,
    ),
]
