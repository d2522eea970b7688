"""`creditgate ledger grants|entries|reservations|jobs TEAM`, `creditgate export TEAM` and
`creditgate verify`: the ledger as stored, read from the database itself (never through a
server). The root command loads this module only when one of them runs (cli/main.py).

A listing prints every row, read page by page as `key list` does (and held until printed: for a
big ledger, page with `--limit` or use `export`, which streams); `--limit N` prints one page
of N rows instead, and `--cursor C` the page after the one whose cursor C was (with `--json`,
in the admin API's page envelope: `cursor` and `hasMore`; in text, the cursor on stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import click

from creditgate.cli.args import resolve_team
from creditgate.cli.output import Output, command_options, fail, table
from creditgate.services import audit, ledger_views, pages
from creditgate.services import export as exports
from creditgate.services.ledger_views import Listing

COLUMNS = {
    "grants": ["startsAt", "id", "kind", "credits", "remaining", "expiresAt", "note"],
    "entries": ["occurredAt", "kind", "credits", "keyName", "endpoint", "movementId", "line"],
    "reservations": ["createdAt", "id", "keyName", "status", "credits", "settled", "endpoint"],
    "jobs": ["createdAt", "id", "keyName", "endpoint", "status"],
}


@click.group()
def ledger() -> None:
    """A team's grants, entries, reservations and jobs, in time order, with filters."""


def _listing_command(name: str, listing: Listing) -> click.Command:
    def run(
        out: Output,
        team_id: str,
        start: str | None,
        end: str | None,
        limit: int | None,
        cursor: str | None,
        key_id: str | None = None,
        kind: str | None = None,
    ) -> None:
        out.local_only(f"ledger {name}")
        found = ledger_views.filters(listing, start, end, key_id, kind)
        team = resolve_team(out, team_id)

        def fetch(after: str | None, size: int = pages.MAX_LIMIT) -> pages.Page[dict[str, Any]]:
            return ledger_views.page(out.db, listing, team, found, size, after)

        if limit is None and cursor is None:
            rows = pages.every(fetch)
            next_cursor = None
        else:
            got = fetch(cursor, pages.DEFAULT_LIMIT if limit is None else limit)
            rows, next_cursor = got.items, got.cursor
        if out.as_json:
            out.emit_page(rows, next_cursor)
            return
        columns = COLUMNS[name]
        click.echo(table(columns, [[r[c] for c in columns] for r in rows]))
        if next_cursor is not None:
            click.echo(f"more: --cursor {next_cursor}", err=True)

    params: list[click.Parameter] = [
        click.Argument(["team_id"], metavar="TEAM"),
        click.Option(["--from", "start"], default=None, help="From this instant (ISO 8601)."),
        click.Option(["--to", "end"], default=None, help="Before this instant (ISO 8601)."),
        click.Option(["--limit"], type=int, default=None, help="One page of this many rows."),
        click.Option(["--cursor"], default=None, help="The page after this cursor's."),
    ]
    if listing.view.key is not None:
        params.append(click.Option(["--key", "key_id"], default=None, help="Only this key's."))
    if listing.filter_name is not None:
        params.append(
            click.Option(
                [f"--{listing.filter_name}", "kind"],
                type=click.Choice(listing.kinds),
                default=None,
                help=f"Only rows of this {listing.filter_name}.",
            )
        )
    callback: Callable[..., None] = command_options(run)
    return click.Command(
        name,
        params=params + list(reversed(getattr(callback, "__click_params__", []))),
        callback=callback,
        help=f"A team's {name}, oldest first.",
    )


for _name, _listing in ledger_views.LISTINGS.items():
    ledger.add_command(_listing_command(_name, _listing))


@click.command("export")
@click.argument("team_id", metavar="TEAM")
@click.option("--what", type=click.Choice(exports.WHATS), required=True)
@click.option("--by", type=click.Choice(exports.BYS), default=None, help="usage: default period.")
@click.option("--format", "fmt", type=click.Choice(exports.FORMATS), default="csv")
@click.option("--from", "start", default=None, help="From this instant (ISO 8601).")
@click.option("--to", "end", default=None, help="Before this instant (ISO 8601).")
@click.option("-o", "--output", "path", default=None, help="Write to this file (default stdout).")
@command_options
def export(
    out: Output,
    team_id: str,
    what: str,
    by: str | None,
    fmt: str,
    start: str | None,
    end: str | None,
    path: str | None,
) -> None:
    """Write a team's entries, or its usage by period, key or day, as CSV or NDJSON. With
    --json, the rows go to the file (-o, required) and one JSON object says how many."""
    out.local_only("export")
    if out.as_json and path is None:
        raise click.UsageError("--json needs -o FILE: stdout carries the one JSON object")
    chosen = exports.prepare(out.db, resolve_team(out, team_id), what, by, fmt, start, end)
    show_progress = not out.as_json and stderr_is_a_terminal()
    total = exports.count(out.db, chosen) if show_progress else None
    if path is None:
        written = _write(out, chosen, sys.stdout.buffer, total)
    else:
        with open(path, "wb") as sink:
            written = _write(out, chosen, sink, total)
    if out.as_json:
        out.emit({"file": path, "rows": written, "format": fmt}, "")
    elif path is not None:
        click.echo(f"{written} rows written to {path}", err=True)


def stderr_is_a_terminal() -> bool:
    return sys.stderr.isatty()


def _write(out: Output, chosen: exports.Export, sink: IO[bytes], total: int | None) -> int:
    written = 0
    sink.write(exports.header(chosen))
    sink.flush()
    if total is None:
        for rows in exports.batches(out.db, chosen):
            sink.write(exports.encode(chosen, rows))
            written += len(rows)
        return written
    with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
        for rows in exports.batches(out.db, chosen):
            sink.write(exports.encode(chosen, rows))
            written += len(rows)
            bar.update(len(rows))
    return written


@click.command()
@command_options
def verify(out: Output) -> None:
    """Check every stored invariant (the README lists them); name every difference."""
    report = audit.verify(out.db)
    diffs = [{"check": d.check, "detail": d.detail} for d in report.differences]
    if not report.ok:
        if out.as_json:
            fail(out, f"{len(diffs)} difference(s) found", 1, {"differences": diffs})
        for d in report.differences:
            click.echo(f"DIFF [{d.check}] {d.detail}", err=True)
        fail(out, f"{len(diffs)} difference(s) found", 1)
    out.emit(
        {"checks": report.checks, "differences": []}, "\n".join(f"ok  {c}" for c in report.checks)
    )
