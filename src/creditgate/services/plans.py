"""Plans are data: operators list, create and edit them. Edits apply from the next period.

A plan's `credits` are granted every billing period, and periods are monthly for monthly and
yearly plans alike (a yearly plan is billed yearly and resets credits monthly): `credits` is what
a team gets each month; a plan billed `once` grants them once and never renews."""

from __future__ import annotations

import re
from dataclasses import replace

from creditgate.domain.errors import Conflict, InvalidInput, NotFound
from creditgate.domain.instants import Instant
from creditgate.domain.plans import BILLING_INTERVALS, Plan
from creditgate.domain.pricing import MAX_CREDITS
from creditgate.services import pages
from creditgate.services.pages import Page
from creditgate.storage import plan_rows as plans
from creditgate.storage.database import Database

PLAN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_LIMIT = 10_000_000


def validate(plan: Plan) -> Plan:
    if not PLAN_ID.match(plan.id):
        raise InvalidInput("plan id must be 1-64 characters of a-z, 0-9, _, . and -", field="id")
    if plan.interval not in BILLING_INTERVALS:
        raise InvalidInput(
            f"interval must be one of: {', '.join(BILLING_INTERVALS)}", field="interval"
        )
    for field, value, top in (
        ("credits", plan.credits, MAX_CREDITS),
        ("concurrency", plan.concurrency, MAX_LIMIT),
        ("scrapeRpm", plan.scrape_rpm, MAX_LIMIT),
        ("crawlRpm", plan.crawl_rpm, MAX_LIMIT),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise InvalidInput(f"{field} must be a whole number from 0 to {top}", field=field)
    return plan


def list_plans(db: Database) -> list[Plan]:
    with db.read() as conn:
        return plans.list_plans(conn)


def page_plans(
    db: Database, limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Plan]:
    """Plans by credits, then id, `limit` at a time from `cursor`."""
    pages.check_limit(limit)
    after = None
    if cursor is not None:
        credits, plan_id = pages.decode_cursor("plans", cursor, int, str)
        after = (int(credits), str(plan_id))
    with db.read() as conn:
        found = plans.list_plans(conn, after, limit + 1)
    return pages.page(found, limit, lambda p: pages.encode_cursor("plans", p.credits, p.id))


def get_plan(db: Database, plan_id: str) -> Plan:
    with db.read() as conn:
        plan = plans.get_plan(conn, plan_id)
    if plan is None:
        raise NotFound(f"Plan {plan_id} not found", planId=plan_id)
    return plan


def create_plan(db: Database, plan: Plan, now: Instant) -> Plan:
    validate(plan)
    with db.write() as conn:
        if plans.get_plan(conn, plan.id) is not None:
            raise Conflict(f"Plan {plan.id} already exists", planId=plan.id)
        plans.insert_plan(conn, plan, now)
    return plan


def update_plan(db: Database, plan: Plan, now: Instant) -> Plan:
    """Replace a plan whole: every field takes the value given."""
    validate(plan)
    with db.write() as conn:
        if plans.get_plan(conn, plan.id, for_update=True) is None:
            raise NotFound(f"Plan {plan.id} not found", planId=plan.id)
        plans.update_plan(conn, plan, now)
    return plan


def change_plan(
    db: Database,
    plan_id: str,
    now: Instant,
    *,
    credits: int | None = None,
    interval: str | None = None,
    concurrency: int | None = None,
    scrape_rpm: int | None = None,
    crawl_rpm: int | None = None,
) -> Plan:
    """Change only the fields given (None: keep); nothing given is refused, not a silent no-op.
    Values equal to the current ones write nothing."""
    given = {
        name: value
        for name, value in (
            ("credits", credits),
            ("interval", interval),
            ("concurrency", concurrency),
            ("scrape_rpm", scrape_rpm),
            ("crawl_rpm", crawl_rpm),
        )
        if value is not None
    }
    if not given:
        raise InvalidInput("nothing to update: no field of the plan was given")
    with db.write() as conn:
        current = plans.get_plan(conn, plan_id, for_update=True)
        if current is None:
            raise NotFound(f"Plan {plan_id} not found", planId=plan_id)
        changed = validate(replace(current, **given))  # type: ignore[arg-type]
        if changed != current:
            plans.update_plan(conn, changed, now)
    return changed
