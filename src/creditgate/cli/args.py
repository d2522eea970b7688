"""What operators type, read the same way by every command: instants, metadata, numbers that
may be negative, and a team given by its id or its name."""

from __future__ import annotations

import re
from typing import Any

import click
import orjson

from creditgate.cli.output import Output, Refused
from creditgate.domain.errors import InvalidInput
from creditgate.domain.ids import is_id
from creditgate.domain.instants import Instant, InvalidInstant, parse_iso


def instant(text: str | None, name: str) -> Instant | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except InvalidInstant as exc:
        raise InvalidInput(f"{name}: {exc}") from exc


def checked_iso(text: str | None, name: str) -> str | None:
    """An instant as the admin API takes it, checked here so both faces refuse it alike."""
    instant(text, name)
    return text


def metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--metadata: not JSON ({exc})", field="metadata") from exc
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    return value


def when(iso: str | None) -> str:
    return "" if iso is None else iso


def changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What an update changed, e.g. "credits 3000 -> 3500"; empty when nothing did."""

    def show(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return ", ".join(
        f"{k} {show(before[k])} -> {show(after[k])}" for k in after if before[k] != after[k]
    )


def resolve_team(out: Output, team: str) -> str:
    """The id of the team given by its id or its name (names are unique). An id is taken as
    it is: the command's own lookup says when no such team exists."""
    if is_id(team):
        return team
    if out.remote is not None:
        named: list[dict[str, Any]] = out.remote.get("/admin/teams", name=team)
        if not named:
            raise Refused(f"Team {team} not found", 404, {"teamId": team})
        return str(named[0]["id"])
    from creditgate.services import teams

    return teams.get_team(out.db, team).id


def segment(text: str) -> str:
    """A path segment: a name with a slash or a space is still one segment."""
    from urllib.parse import quote

    return quote(text, safe="")


class NegativeNumbers(click.Command):
    """A command with a number argument: `grant TEAM -5` reaches the command, which says what is
    wrong with -5, where click alone would answer "No such option: -5"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(NEGATIVE.match(arg) for arg in args):
            ctx.ignore_unknown_options = True  # -5 is then an argument like any other
        return super().parse_args(ctx, args)


NEGATIVE = re.compile(r"-\d")
