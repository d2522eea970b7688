"""`creditgate plan list|create|update`: the plan catalog, through the database or, with
--server, the admin API's plan routes; either way the admin API's plan answer."""

from __future__ import annotations

from typing import Any

import click

from creditgate.cli.args import changes, segment
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import now
from creditgate.domain.plans import BILLING_INTERVALS


@click.group()
def plan() -> None:
    """Plans: credits per period and limits."""


def describe_plan(p: dict[str, Any]) -> str:
    """What a plan grants, truthfully: credits come every month for monthly and yearly plans."""
    if p["interval"] == "once":
        grants = f"{p['credits']} credits once, never renewed"
    else:
        grants = f"{p['credits']} credits a month, billed {p['interval']}ly"
    return (
        f"{grants}; concurrency {p['concurrency']}, {p['scrapeRpm']} scrape/min, "
        f"{p['crawlRpm']} crawl/min"
    )


@plan.command("list")
@command_options
def plan_list(out: Output) -> None:
    """List plans. Credits are granted every month, also on yearly plans (billed yearly)."""
    if out.remote is not None:
        found = out.remote.every("/admin/plans")
    else:
        from creditgate.services import pages, plans
        from creditgate.services.wire import plan_json

        db = out.db
        every = pages.every(lambda cursor: plans.page_plans(db, pages.MAX_LIMIT, cursor))
        found = [plan_json(p) for p in every]
    out.emit_list(
        found,
        table(
            ["id", "credits", "granted", "billed", "concurrency", "scrape/min", "crawl/min"],
            [
                [
                    p["id"],
                    p["credits"],
                    "once" if p["interval"] == "once" else "monthly",
                    "once" if p["interval"] == "once" else f"{p['interval']}ly",
                    p["concurrency"],
                    p["scrapeRpm"],
                    p["crawlRpm"],
                ]
                for p in found
            ],
        ),
    )


CREDITS_HELP = (
    "Credits granted every month, also when billed yearly (a once plan grants them once)."
)
INTERVAL_HELP = "How it is billed; credits still reset monthly on a yearly plan."


@plan.command("create")
@click.argument("plan_id")
@click.option("--credits", type=int, required=True, help=CREDITS_HELP)
@click.option(
    "--interval",
    type=click.Choice(BILLING_INTERVALS),
    default="month",
    show_default=True,
    help=INTERVAL_HELP,
)
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option("--scrape-rpm", type=int, default=10, show_default=True)
@click.option("--crawl-rpm", type=int, default=2, show_default=True)
@command_options
def plan_create(
    out: Output,
    plan_id: str,
    credits: int,
    interval: str,
    concurrency: int,
    scrape_rpm: int,
    crawl_rpm: int,
) -> None:
    """Create a plan; a plan that exists is refused (change it with plan update)."""
    if out.remote is not None:
        body = {"id": plan_id, "credits": credits, "interval": interval}
        limits = {"concurrency": concurrency, "scrapeRpm": scrape_rpm, "crawlRpm": crawl_rpm}
        saved = out.remote.post("/admin/plans", {**body, **limits})
    else:
        from creditgate.domain.plans import Plan
        from creditgate.services import plans
        from creditgate.services.wire import plan_json

        new = Plan(plan_id, credits, interval, concurrency, scrape_rpm, crawl_rpm)  # type: ignore[arg-type]
        saved = plan_json(plans.create_plan(out.db, new, now()))
    out.emit(saved, f"plan {saved['id']} created: {describe_plan(saved)}")


@plan.command("update")
@click.argument("plan_id")
@click.option("--credits", type=int, default=None, help=CREDITS_HELP)
@click.option("--interval", type=click.Choice(BILLING_INTERVALS), default=None, help=INTERVAL_HELP)
@click.option("--concurrency", type=int, default=None)
@click.option("--scrape-rpm", type=int, default=None)
@click.option("--crawl-rpm", type=int, default=None)
@command_options
def plan_update(
    out: Output,
    plan_id: str,
    credits: int | None,
    interval: str | None,
    concurrency: int | None,
    scrape_rpm: int | None,
    crawl_rpm: int | None,
) -> None:
    """Change only the options given; the rest stay as they are. Credits and interval apply from
    each team's next period; concurrency and rate limits at once."""
    if (credits, interval, concurrency, scrape_rpm, crawl_rpm) == (None,) * 5:
        raise InvalidInput(
            "nothing to update: give --credits, --interval, --concurrency, --scrape-rpm "
            "or --crawl-rpm"
        )
    if out.remote is not None:
        before = next(
            (p for p in out.remote.every("/admin/plans") if p["id"] == plan_id),
            None,
        )
        given = {
            "credits": credits,
            "interval": interval,
            "concurrency": concurrency,
            "scrapeRpm": scrape_rpm,
            "crawlRpm": crawl_rpm,
        }
        body = {k: v for k, v in given.items() if v is not None}
        saved = out.remote.patch(f"/admin/plans/{segment(plan_id)}", body)
        before = before or saved
    else:
        from creditgate.services import plans
        from creditgate.services.wire import plan_json

        before = plan_json(plans.get_plan(out.db, plan_id))
        saved = plan_json(
            plans.change_plan(
                out.db,
                plan_id,
                now(),
                credits=credits,
                interval=interval,
                concurrency=concurrency,
                scrape_rpm=scrape_rpm,
                crawl_rpm=crawl_rpm,
            )
        )
    said = changes(before, saved)
    out.emit(
        saved,
        f"plan {saved['id']}: "
        + (
            f"{said} (credits and interval from each team's next period, limits at once)"
            if said
            else "nothing changed"
        )
        + f"; now {describe_plan(saved)}",
    )


@plan.command(
    "set",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def plan_set() -> None:
    """Replaced by plan create and plan update."""
    raise click.UsageError(
        "plan set is gone: `plan create ID --credits N ...` makes a plan, "
        "`plan update ID --credits N ...` changes only the options given"
    )
