"""`creditgate usage TEAM [--by-key]`: credits used per billing period.

`--json` prints the admin usage route's answer (GET /admin/teams/{team}/usage): `data` is its
rows. The text adds what remains now (the balance route's answer; `team show --json` has it)."""

from __future__ import annotations

from typing import Any

import click

from creditgate.cli.args import resolve_team, segment
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.instants import now


def usage_rows(out: Output, team_id: str, by_key: bool) -> list[dict[str, Any]]:
    """The admin usage route's rows: every period from the first with usage to the current."""
    if out.remote is not None:
        found = resolve_team(out, team_id)
        query = {"byKey": "true" if by_key else "false"}
        rows: list[dict[str, Any]] = out.remote.get(f"/admin/teams/{segment(found)}/usage", **query)
        return rows
    from creditgate.services import account, teams
    from creditgate.services.wire import usage_json

    known = teams.get_team(out.db, team_id)
    return [usage_json(r) for r in account.history(out.db, known, by_key, now(), every_period=True)]


@click.command()
@click.argument("team_id", metavar="TEAM")
@click.option("--by-key", is_flag=True, help="One row per period and API key.")
@command_options
def usage(out: Output, team_id: str, by_key: bool) -> None:
    """Credits used per billing period (from the first with usage to the current one), and
    what remains now. By key, a period no key used is a row with no key and 0 credits.
    TEAM is the team's id or name; --json prints the admin usage route's answer."""
    from creditgate.cli.teams import balance

    periods = usage_rows(out, team_id, by_key)
    if out.as_json:
        out.emit_rows(periods, "")
        return
    money = balance(out, resolve_team(out, team_id))
    text = table(
        ["period start", "period end", "key", "credits used"],
        [[p["startDate"], p["endDate"], p["apiKey"], p["creditsUsed"]] for p in periods],
    )
    out.emit_rows(
        periods,
        f"{text}\n\nremaining: {money['remainingCredits']} of {money['planCredits']} plan credits",
    )
