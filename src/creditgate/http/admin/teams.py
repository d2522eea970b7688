"""Teams: create, list, read, change (suspend, resume, rename, move to another plan)."""

from __future__ import annotations

from creditgate.http import schemas
from creditgate.http.admin.query import NAME, PAGE
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import teams
from creditgate.services.wire import Team
from creditgate.web.body import instant
from creditgate.web.context import blocking


async def create_team(call: Call) -> Reply:
    body = call.parsed(schemas.TeamIn)
    team = await blocking(
        teams.create_team,
        call.ctx.db,
        body.name,
        call.ctx.clock(),
        plan_id=body.plan,
        anchor=instant(body.anchor, "anchor"),
        allow_overage=body.allowOverage,
    )
    return Reply(Team.of(team), 201)


async def list_teams(call: Call) -> Reply:
    name = call.query("name")
    if name is not None:  # names are unique: one team or none (the CLI's name lookup)
        named = await blocking(teams.named, call.ctx.db, name)
        return Reply([Team.of(t) for t in named], cursor=None)
    found = await blocking(teams.page_teams, call.ctx.db, *call.page())
    return Reply([Team.of(t) for t in found.items], cursor=found.cursor)


async def get_team(call: Call) -> Reply:
    return Reply(Team.of(await blocking(teams.get_team, call.ctx.db, call.path("team_id"))))


async def patch_team(call: Call) -> Reply:
    body = call.parsed(schemas.TeamPatch)
    schemas.require_changes(body)
    team = await blocking(
        teams.update_team,
        call.ctx.db,
        call.path("team_id"),
        call.ctx.clock(),
        suspended=body.suspended,
        allow_overage=body.allowOverage,
        plan_id=body.plan,
        name=body.name,
        plan_now=bool(body.now),
    )
    return Reply(Team.of(team))


TEAM = "/admin/teams/{team_id}"
ROUTES = [
    AdminRoute(
        "GET",
        "/admin/teams",
        list_teams,
        "List teams, or the one of a name",
        "listTeams",
        Team,
        many=True,
        query=(*PAGE, NAME),
    ),
    AdminRoute(
        "POST",
        "/admin/teams",
        create_team,
        "Create a team",
        "createTeam",
        Team,
        body=schemas.TeamIn,
        status=CREATED,
        errors=(*NAMED, 409),  # 409: the name is another team's
    ),
    AdminRoute("GET", TEAM, get_team, "Read a team", "getTeam", Team, errors=NAMED),
    AdminRoute(
        "PATCH",
        TEAM,
        patch_team,
        "Suspend, resume or change a team",
        "updateTeam",
        Team,
        body=schemas.TeamPatch,
        errors=(*NAMED, 409),
    ),
]
