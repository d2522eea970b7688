"""The `creditgate` command: a group of one module per noun (cli/teams.py, keys.py, plans.py,
credits.py, usage.py, alerts.py, webhooks.py, ledger.py, serve.py). Each command is a thin call
into a service, or into the admin API of a server (--server).

Nothing of the server, and no SQLAlchemy, is imported to parse a command line or print help:
commands import what they use when they run, and `ledger`, `export` and `verify` (whose options
come from the ledger's own tables) are loaded only when named."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click
import orjson

from creditgate import __version__
from creditgate.cli.alerts import alert, topup
from creditgate.cli.credits import charge, grant
from creditgate.cli.keys import key
from creditgate.cli.plans import plan
from creditgate.cli.serve import migrate, serve
from creditgate.cli.teams import team
from creditgate.cli.usage import usage
from creditgate.cli.webhooks import webhook

# name: (module, attribute, the short help `creditgate --help` shows without importing it)
LAZY = {
    "ledger": (
        "creditgate.cli.ledger",
        "ledger",
        "A team's grants, entries, reservations and jobs, in time order, with filters.",
    ),
    "export": (
        "creditgate.cli.ledger",
        "export",
        "Write a team's entries, or its usage by period, key or day, as CSV or NDJSON.",
    ),
    "verify": (
        "creditgate.cli.ledger",
        "verify",
        "Check every stored invariant (the README lists them); name every difference.",
    ),
}


class Root(click.Group):
    """The root group: lazy commands, and, with `--json` anywhere on the line, a usage error (a
    bad option, a value of the wrong type) as one JSON object too, as every other refusal is;
    exit status 2 as click's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY:
            module, attribute, _ = LAZY[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            limit = formatter.width - 6 - len(name)
            if name in LAZY:
                stand_in = click.Command(name, help=LAZY[name][2])  # shortened as click would
                rows.append((name, stand_in.get_short_help_str(limit)))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        words = list(sys.argv[1:] if args is None else args)
        if "--json" not in words or not standalone_mode:
            return super().main(words, prog_name, complete_var, standalone_mode, **extra)
        try:
            return super().main(words, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            problem = {"success": False, "error": exc.format_message(), "status": 400}
            click.echo(orjson.dumps(problem).decode())
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # refusals raised as click's own: one line
            click.echo(orjson.dumps({"success": False, "error": exc.format_message()}).decode())
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            sys.exit(1)


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="creditgate")
def main() -> None:
    """creditgate: a credit ledger and metering service behind the Firecrawl account API.

    Commands act on the database (--database-url, CREDITGATE_DATABASE_URL, default the
    embedded SQLite file) or, with --server URL (CREDITGATE_SERVER) or --profile NAME, on a
    running server's admin API. A TEAM is the team's id or its name."""


for _command in (serve, migrate, team, key, plan, grant, charge, usage, alert, topup, webhook):
    main.add_command(_command)
