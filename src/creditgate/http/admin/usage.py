"""A team's balance now and its usage per billing period."""

from __future__ import annotations

from creditgate.http.admin.query import BY_KEY
from creditgate.http.admin.route import NAMED, AdminRoute, Call, Reply
from creditgate.services import account, teams
from creditgate.services.wire import Balance, UsagePeriod
from creditgate.web.context import blocking


async def team_balance(call: Call) -> Reply:
    team = await blocking(teams.get_team, call.ctx.db, call.path("team_id"))
    return Reply(
        Balance.of(await blocking(account.credit_usage, call.ctx.db, team, call.ctx.clock()))
    )


async def team_usage(call: Call) -> Reply:
    by_key = call.flag("byKey")
    team = await blocking(teams.get_team, call.ctx.db, call.path("team_id"))
    rows = await blocking(
        account.history, call.ctx.db, team, by_key, call.ctx.clock(), every_period=True
    )
    return Reply([UsagePeriod.of(r) for r in rows])


ROUTES = [
    AdminRoute(
        "GET",
        "/admin/teams/{team_id}/balance",
        team_balance,
        "A team's balance now",
        "getBalance",
        Balance,
        errors=NAMED,
    ),
    AdminRoute(
        "GET",
        "/admin/teams/{team_id}/usage",
        team_usage,
        "A team's usage per period (?byKey=true)",
        "getUsage",
        UsagePeriod,
        many=True,
        query=(BY_KEY,),
        errors=NAMED,
    ),
]
