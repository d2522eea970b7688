"""Automatic top-up rules: list, add, remove."""

from __future__ import annotations

from creditgate.http import schemas
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import topups
from creditgate.services.wire import RemovedAlertRule, TopUpRule
from creditgate.web.context import blocking

TOPUPS = "/admin/teams/{team_id}/topups"


async def list_topups(call: Call) -> Reply:
    found = await blocking(topups.list_rules, call.ctx.db, call.path("team_id"))
    return Reply([TopUpRule.of(*row) for row in found])


async def add_topup(call: Call) -> Reply:
    body = call.parsed(schemas.TopUpIn)
    rule = await blocking(
        topups.add_rule,
        call.ctx.db,
        call.path("team_id"),
        body.below,
        body.credits,
        call.ctx.clock(),
        expires_days=body.expiresDays,
        max_per_period=body.maxPerPeriod,
    )
    return Reply(TopUpRule.of(rule, None, 0), 201)


async def remove_topup(call: Call) -> Reply:
    rule_id = call.path("rule_id")
    await blocking(topups.remove_rule, call.ctx.db, call.path("team_id"), rule_id)
    return Reply(RemovedAlertRule(id=rule_id, removed=True))


ROUTES = [
    AdminRoute(
        "GET",
        TOPUPS,
        list_topups,
        "A team's automatic top-up rules",
        "listTopUpRules",
        TopUpRule,
        many=True,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        TOPUPS,
        add_topup,
        "Add a top-up rule: when a charge leaves fewer than `below` credits, grant `credits` "
        "(expiring after `expiresDays`), at most `maxPerPeriod` times a period",
        "addTopUpRule",
        TopUpRule,
        body=schemas.TopUpIn,
        status=CREATED,
        errors=NAMED,
    ),
    AdminRoute(
        "DELETE",
        f"{TOPUPS}/{{rule_id}}",
        remove_topup,
        "Remove a top-up rule",
        "removeTopUpRule",
        RemovedAlertRule,
        errors=NAMED,
    ),
]
