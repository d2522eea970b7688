"""Alert rules: list, add, remove, and the alerts fired."""

from __future__ import annotations

from creditgate.http import schemas
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import alerts
from creditgate.services.wire import AlertRule, FiredAlert, RemovedAlertRule
from creditgate.web.context import blocking

ALERTS = "/admin/teams/{team_id}/alerts"


async def list_alerts(call: Call) -> Reply:
    rules = await blocking(alerts.list_rules, call.ctx.db, call.path("team_id"))
    return Reply([AlertRule.of(r) for r in rules])


async def add_alert(call: Call) -> Reply:
    body = call.parsed(schemas.AlertRuleIn)
    rule = await blocking(
        alerts.add_rule,
        call.ctx.db,
        call.path("team_id"),
        body.kind,
        body.threshold,
        call.ctx.clock(),
        body.keyId,
    )
    return Reply(AlertRule.of(rule), 201)


async def remove_alert(call: Call) -> Reply:
    rule_id = call.path("rule_id")
    await blocking(alerts.remove_rule, call.ctx.db, call.path("team_id"), rule_id)
    return Reply(RemovedAlertRule(id=rule_id, removed=True))


async def fired_alerts(call: Call) -> Reply:
    rows = await blocking(alerts.fired, call.ctx.db, call.path("team_id"))
    return Reply([FiredAlert.of(r) for r in rows])


ROUTES = [
    AdminRoute(
        "GET",
        ALERTS,
        list_alerts,
        "A team's alert rules",
        "listAlertRules",
        AlertRule,
        many=True,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        ALERTS,
        add_alert,
        "Add an alert rule: percent of the period's credits (or a key's cap) used, or credits "
        "remaining; fires once per period",
        "addAlertRule",
        AlertRule,
        body=schemas.AlertRuleIn,
        status=CREATED,
        errors=(404, 409),
    ),
    AdminRoute(
        "DELETE",
        f"{ALERTS}/{{rule_id}}",
        remove_alert,
        "Remove an alert rule",
        "removeAlertRule",
        RemovedAlertRule,
        errors=NAMED,
    ),
    AdminRoute(
        "GET",
        f"{ALERTS}/fired",
        fired_alerts,
        "Alerts fired, newest first",
        "listFiredAlerts",
        FiredAlert,
        many=True,
        errors=NAMED,
    ),
]
