"""Plan rows."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, insert, or_, select, update

from creditgate.domain.plans import Plan
from creditgate.storage.rows import plan_from_row
from creditgate.storage.tables import plans


@cache
def _by_id(for_update: bool) -> Select[Any]:
    query = select(plans).where(plans.c.id == bindparam("id"))
    return query.with_for_update() if for_update else query


def get_plan(conn: Connection, plan_id: str, *, for_update: bool = False) -> Plan | None:
    """`for_update`: lock the row, so two edits of one plan are applied one after the other."""
    row = conn.execute(_by_id(for_update), {"id": plan_id}).first()
    return None if row is None else plan_from_row(row)


def list_plans(
    conn: Connection, after: tuple[int, str] | None = None, limit: int | None = None
) -> list[Plan]:
    """Plans by credits, then id; `after`: the (credits, id) a page ended at."""
    query = select(plans).order_by(plans.c.credits, plans.c.id).limit(limit)
    if after is not None:
        credits, plan_id = after
        query = query.where(
            or_(plans.c.credits > credits, and_(plans.c.credits == credits, plans.c.id > plan_id))
        )
    return [plan_from_row(r) for r in conn.execute(query)]


def _values(plan: Plan) -> dict[str, object]:
    return {
        "credits": plan.credits,
        "interval": plan.interval,
        "concurrency": plan.concurrency,
        "scrape_rpm": plan.scrape_rpm,
        "crawl_rpm": plan.crawl_rpm,
    }


def insert_plan(conn: Connection, plan: Plan, at: int) -> None:
    conn.execute(insert(plans).values(id=plan.id, created_ms=at, updated_ms=at, **_values(plan)))


def update_plan(conn: Connection, plan: Plan, at: int) -> None:
    conn.execute(update(plans).where(plans.c.id == plan.id).values(updated_ms=at, **_values(plan)))
