"""`creditgate alert ...` and `creditgate topup ...`: a team's threshold rules, through the
database or, with --server, the admin API's alert and top-up routes."""

from __future__ import annotations

from typing import Any

import click

from creditgate.cli.args import resolve_team, segment
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import now


@click.group()
def alert() -> None:
    """Alert rules: thresholds that fire a webhook event once per billing period."""


@alert.command("add")
@click.argument("team_id", metavar="TEAM")
@click.option(
    "--percent", type=int, default=None, help="Fire at this % of the period's credits used."
)
@click.option(
    "--remaining", type=int, default=None, help="Fire at this many credits left or fewer."
)
@click.option("--key", "key_id", default=None, help="A key of the team (percent: of its cap).")
@command_options
def alert_add(
    out: Output, team_id: str, percent: int | None, remaining: int | None, key_id: str | None
) -> None:
    """Add a rule: exactly one of --percent or --remaining."""
    if (percent is None) == (remaining is None):
        raise InvalidInput("give exactly one of --percent or --remaining", field="threshold")
    kind, threshold = ("percent", percent) if percent is not None else ("remaining", remaining)
    found = resolve_team(out, team_id)
    if out.remote is not None:
        body = {"kind": kind, "threshold": threshold, "keyId": key_id}
        rule = out.remote.post(f"/admin/teams/{segment(found)}/alerts", body)
    else:
        from creditgate.services import alerts
        from creditgate.services.wire import rule_json

        rule = rule_json(alerts.add_rule(out.db, found, kind, threshold, now(), key_id))
    out.emit(rule, f"alert rule {rule['id']}: {kind} {threshold}")


@alert.command("list")
@click.argument("team_id", metavar="TEAM")
@command_options
def alert_list(out: Output, team_id: str) -> None:
    """A team's rules."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        rules = out.remote.get(f"/admin/teams/{segment(found)}/alerts")
    else:
        from creditgate.services import alerts
        from creditgate.services.wire import rule_json

        rules = [rule_json(r) for r in alerts.list_rules(out.db, found)]
    out.emit_list(
        rules,
        table(
            ["id", "kind", "threshold", "key"],
            [[r["id"], r["kind"], r["threshold"], r["keyId"] or "(team)"] for r in rules],
        ),
    )


@alert.command("remove")
@click.argument("team_id", metavar="TEAM")
@click.argument("rule_id")
@command_options
def alert_remove(out: Output, team_id: str, rule_id: str) -> None:
    """Remove a rule (what it fired stays in the log)."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        out.remote.delete(f"/admin/teams/{segment(found)}/alerts/{segment(rule_id)}")
    else:
        from creditgate.services import alerts

        alerts.remove_rule(out.db, found, rule_id)
    out.emit({"id": rule_id, "removed": True}, f"alert rule {rule_id} removed")


@alert.command("fired")
@click.argument("team_id", metavar="TEAM")
@command_options
def alert_fired(out: Output, team_id: str) -> None:
    """Alerts the team fired, newest first."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        rows = out.remote.get(f"/admin/teams/{segment(found)}/alerts/fired")
    else:
        from creditgate.services import alerts
        from creditgate.services.wire import fired_json

        rows = [fired_json(r) for r in alerts.fired(out.db, found)]
    out.emit_list(
        rows,
        table(
            ["fired", "rule", "period", "event"],
            [[r["firedAt"], r["ruleId"], r["periodStart"], r["type"]] for r in rows],
        ),
    )


@click.group()
def topup() -> None:
    """Automatic top-ups: grant credits when a charge leaves a team under a threshold."""


@topup.command("add")
@click.argument("team_id", metavar="TEAM")
@click.option("--below", type=int, required=True, help="When fewer credits than this are left.")
@click.option("--credits", type=int, required=True, help="Grant this many.")
@click.option("--expires-days", type=int, default=None, help="They expire after so many days.")
@click.option("--max-per-period", type=int, default=1, show_default=True)
@command_options
def topup_add(
    out: Output,
    team_id: str,
    below: int,
    credits: int,
    expires_days: int | None,
    max_per_period: int,
) -> None:
    """Add a rule: at most --max-per-period grants a billing period."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        body = {
            "below": below,
            "credits": credits,
            "expiresDays": expires_days,
            "maxPerPeriod": max_per_period,
        }
        rule = out.remote.post(f"/admin/teams/{segment(found)}/topups", body)
    else:
        from creditgate.services import topups
        from creditgate.services.wire import topup_json

        made = topups.add_rule(
            out.db,
            found,
            below,
            credits,
            now(),
            expires_days=expires_days,
            max_per_period=max_per_period,
        )
        rule = topup_json(made, None, 0)
    out.emit(
        rule,
        f"top-up rule {rule['id']}: below {below}, grant {credits}, "
        f"at most {max_per_period} a period",
    )


@topup.command("list")
@click.argument("team_id", metavar="TEAM")
@command_options
def topup_list(out: Output, team_id: str) -> None:
    """A team's top-up rules, with how many each granted this period."""
    found = resolve_team(out, team_id)
    rules: list[dict[str, Any]]
    if out.remote is not None:
        rules = out.remote.get(f"/admin/teams/{segment(found)}/topups")
    else:
        from creditgate.services import topups
        from creditgate.services.wire import topup_json

        rules = [topup_json(*row) for row in topups.list_rules(out.db, found)]
    out.emit_list(
        rules,
        table(
            ["id", "below", "credits", "expires days", "max/period", "granted"],
            [
                [
                    r["id"],
                    r["below"],
                    r["credits"],
                    r["expiresDays"] or "never",
                    r["maxPerPeriod"],
                    r["grantedInPeriod"],
                ]
                for r in rules
            ],
        ),
    )


@topup.command("remove")
@click.argument("team_id", metavar="TEAM")
@click.argument("rule_id")
@command_options
def topup_remove(out: Output, team_id: str, rule_id: str) -> None:
    """Remove a top-up rule (what it granted stays)."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        out.remote.delete(f"/admin/teams/{segment(found)}/topups/{segment(rule_id)}")
    else:
        from creditgate.services import topups

        topups.remove_rule(out.db, found, rule_id)
    out.emit({"id": rule_id, "removed": True}, f"top-up rule {rule_id} removed")
