"""`creditgate team create|list|show|update`: the wallets.

Each command reads or writes through the database's services or, with --server, the admin
API's team routes; either way it prints the admin API's team answer (services/wire.py)."""

from __future__ import annotations

from typing import Any

import click

from creditgate.cli.args import changes, checked_iso, instant, resolve_team, segment
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import now, parse_iso


@click.group()
def team() -> None:
    """Teams: the wallets."""


@team.command("create")
@click.argument("name")
@click.option("--plan", default="free", show_default=True)
@click.option("--anchor", default=None, help="Start of the first billing period (ISO 8601).")
@click.option("--allow-overage", is_flag=True, help="Let usage go past the balance.")
@command_options
def team_create(out: Output, name: str, plan: str, anchor: str | None, allow_overage: bool) -> None:
    """Create a team (its name unique); its plan's first credits are granted at once."""
    if out.remote is not None:
        body = {"name": name, "plan": plan, "anchor": checked_iso(anchor, "anchor")}
        created = out.remote.post("/admin/teams", {**body, "allowOverage": allow_overage})
    else:
        from creditgate.services import teams
        from creditgate.services.wire import team_json

        created = team_json(
            teams.create_team(
                out.db,
                name,
                now(),
                plan_id=plan,
                anchor=instant(anchor, "anchor"),
                allow_overage=allow_overage,
            )
        )
    out.emit(created, f"team {created['id']} ({created['name']}, plan {created['plan']})")


@team.command("list")
@command_options
def team_list(out: Output) -> None:
    """List every team (read page by page)."""
    if out.remote is not None:
        found = out.remote.every("/admin/teams")
    else:
        from creditgate.services import pages, teams
        from creditgate.services.wire import team_json

        db = out.db
        every = pages.every(lambda cursor: teams.page_teams(db, pages.MAX_LIMIT, cursor))
        found = [team_json(t) for t in every]
    out.emit_list(
        found,
        table(
            ["id", "name", "plan", "anchor", "suspended"],
            [[t["id"], t["name"], t["plan"], t["anchor"], t["suspended"]] for t in found],
        ),
    )


def read_team(out: Output, team_id: str) -> dict[str, Any]:
    """The admin API's answer for one team, given by its id or its name."""
    if out.remote is not None:
        found: dict[str, Any] = out.remote.get(f"/admin/teams/{resolve_team(out, team_id)}")
        return found
    from creditgate.services import teams
    from creditgate.services.wire import team_json

    return team_json(teams.get_team(out.db, team_id))


def balance(out: Output, team_id: str) -> dict[str, Any]:
    """The admin API's balance answer (GET /admin/teams/{team}/balance)."""
    if out.remote is not None:
        found: dict[str, Any] = out.remote.get(f"/admin/teams/{segment(team_id)}/balance")
        return found
    from creditgate.services import account, teams
    from creditgate.services.wire import iso

    usage = account.credit_usage(out.db, teams.get_team(out.db, team_id), now())
    return {
        "remainingCredits": usage.remaining,
        "planCredits": usage.plan_credits,
        "billingPeriodStart": iso(usage.period_start),
        "billingPeriodEnd": iso(usage.period_end),
    }


@team.command("show")
@click.argument("team_id", metavar="TEAM")
@command_options
def team_show(out: Output, team_id: str) -> None:
    """A team (by id or name): the admin API's team answer, its balance (the balance route's
    answer), the credits it used this period and how many keys it has."""
    from creditgate.cli.keys import every_key
    from creditgate.cli.usage import usage_rows

    found = read_team(out, team_id)
    money = balance(out, found["id"])
    start = money["billingPeriodStart"]
    used = sum(
        r["creditsUsed"] for r in usage_rows(out, found["id"], False) if r["startDate"] == start
    )
    keys = every_key(out, found["id"])
    at = now()
    live = [
        k
        for k in keys
        if k["revokedAt"] is None and (k["expiresAt"] is None or parse_iso(k["expiresAt"]) > at)
    ]
    data = {
        **found,
        "balance": money,
        "creditsUsed": used,
        "keys": len(keys),
        "liveKeys": len(live),
    }
    period = f"{start} to {money['billingPeriodEnd'] or 'never'}" if start else "no period"
    rows = [
        ["id", found["id"]],
        ["name", found["name"]],
        ["plan", found["plan"]],
        ["anchor", found["anchor"]],
        ["suspended", found["suspended"]],
        ["allow overage", found["allowOverage"]],
        ["created", found["createdAt"]],
        ["period", period],
        ["used this period", used],
        ["remaining", f"{money['remainingCredits']} of {money['planCredits']} plan credits"],
        ["keys", f"{len(keys)} ({len(live)} live)"],
    ]
    out.emit(data, "\n".join(f"{k:<17} {v}" for k, v in rows))


@team.command("update")
@click.argument("team_id", metavar="TEAM")
@click.option("--plan", default=None)
@click.option("--name", default=None)
@click.option("--suspend/--resume", default=None, help="Suspended teams' keys get 403.")
@click.option("--overage/--no-overage", default=None)
@click.option(
    "--now",
    "plan_now",
    is_flag=True,
    help="With --plan: a plan with more credits raises this period's credits at once.",
)
@command_options
def team_update(
    out: Output,
    team_id: str,
    plan: str | None,
    name: str | None,
    suspend: bool | None,
    overage: bool | None,
    plan_now: bool,
) -> None:
    """Change a team's plan, name, suspension or overage: only the options given."""
    if (plan, name, suspend, overage) == (None, None, None, None):
        raise InvalidInput(
            "nothing to update: give --plan, --name, --suspend/--resume or --overage/--no-overage"
        )
    before = read_team(out, team_id)
    if out.remote is not None:
        given = {"plan": plan, "name": name, "suspended": suspend, "allowOverage": overage}
        body = {k: v for k, v in given.items() if v is not None}
        if plan_now:
            body["now"] = True
        changed = out.remote.patch(f"/admin/teams/{before['id']}", body)
    else:
        from creditgate.services import teams
        from creditgate.services.wire import team_json

        changed = team_json(
            teams.update_team(
                out.db,
                before["id"],
                now(),
                suspended=suspend,
                allow_overage=overage,
                plan_id=plan,
                name=name,
                plan_now=plan_now,
            )
        )
    said = changes(before, changed)
    note = (
        " (its limits apply at once; this period's credits were raised to the new plan's)"
        if plan_now
        else " (its limits apply at once, its credits from the next billing period)"
    )
    out.emit(
        changed,
        f"team {changed['id']}: "
        + (said + (note if before["plan"] != changed["plan"] else "") or "nothing changed"),
    )
