"""`creditgate serve` and `creditgate migrate`: the commands that run or shape the server's own
database. The server (app/, uvicorn) is imported only when `serve` runs."""

from __future__ import annotations

import os

import click

from creditgate import __version__
from creditgate.cli import where
from creditgate.cli.output import Output, command_options, fail


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 3100).")
@click.option("--workers", type=int, default=None, help="Server processes sharing the database.")
@click.option("--database-url", default=None, help="sqlite:///path or postgresql://...")
@click.option(
    "--admin-token",
    default=None,
    help="Enables the admin API. Visible to other local users (ps): prefer "
    "CREDITGATE_ADMIN_TOKEN or --admin-token-file.",
)
@click.option("--admin-token-file", default=None, help="Read the admin token from this file.")
@click.option("--upstream", default=None, help="Front this Firecrawl URL (gateway mode).")
@click.option(
    "--upstream-key",
    default=None,
    help="The upstream's own API key, if it needs one. Visible to other local users (ps): "
    "prefer CREDITGATE_UPSTREAM_KEY or --upstream-key-file.",
)
@click.option("--upstream-key-file", default=None, help="Read the upstream's key from this file.")
@click.option("--redis-url", default=None, help="Share rate limits between gateway processes.")
@click.option(
    "--allow-foreign-tables",
    is_flag=True,
    help="Add creditgate's tables to a database that holds other tables.",
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    database_url: str | None,
    admin_token: str | None,
    admin_token_file: str | None,
    upstream: str | None,
    upstream_key: str | None,
    upstream_key_file: str | None,
    redis_url: str | None,
    allow_foreign_tables: bool,
) -> None:
    """Start the HTTP server (creates and migrates the database first)."""
    from pydantic import ValidationError

    from creditgate.app import serve as serve_app
    from creditgate.settings import SecretError, Settings
    from creditgate.storage.database import database_errors, display_url, explain

    database_url = where.for_serve(database_url)  # absolute: every worker uses this very file
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
        ("DATABASE_URL", database_url),
        ("UPSTREAM_URL", upstream),
        ("REDIS_URL", redis_url),
    ):
        if value is not None:
            os.environ[f"CREDITGATE_{name}"] = str(value)
    _export_secret("ADMIN_TOKEN", "--admin-token", admin_token, admin_token_file)
    _export_secret("UPSTREAM_KEY", "--upstream-key", upstream_key, upstream_key_file)
    try:
        settings = Settings()
    except ValidationError as exc:  # e.g. CREDITGATE_PORT=abc: name the setting, no traceback
        problem = exc.errors()[0]
        name = "CREDITGATE_" + "_".join(str(p) for p in problem["loc"]).upper()
        raise click.ClickException(f"{name}: {problem['msg']}") from None
    try:  # fail now, with a clear message, rather than in every worker
        settings.admin_secret()
        settings.upstream_secret()
        settings.session_key()
        new = where.new_file(settings.database_url)
        warning = serve_app.prepare(settings, allow_foreign_tables=allow_foreign_tables)
    except (SecretError, ValueError) as exc:  # e.g. an unreadable secret, CREDITGATE_ROUTES
        raise click.ClickException(str(exc)) from exc
    except database_errors() as exc:  # one line: what failed, where, what to do
        raise click.ClickException(explain(settings.database_url, exc)) from None
    if new is not None:
        click.echo(f"created a new, empty database at {new}", err=True)
    if warning is not None:
        click.echo(warning, err=True)
    click.echo(
        f"creditgate {__version__} on http://{settings.host}:{settings.port} "
        f"({display_url(settings.database_url)})",
        err=True,
    )
    serve_app.run(settings)


def _export_secret(name: str, flag: str, value: str | None, path: str | None) -> None:
    """Hand a secret's flag to the workers (through their environment); a flag overrides the
    environment, its value or its file alike. A value on argv is readable by every local user."""
    if value is not None and path is not None:
        raise click.UsageError(f"give {flag} or {flag}-file, not both")
    if value is not None:
        click.echo(
            f"warning: {flag} is visible to other local users in the process list; "
            f"set CREDITGATE_{name} or use {flag}-file instead",
            err=True,
        )
        os.environ[f"CREDITGATE_{name}"] = value
        os.environ.pop(f"CREDITGATE_{name}_FILE", None)
    elif path is not None:
        os.environ[f"CREDITGATE_{name}_FILE"] = os.path.abspath(path)
        os.environ.pop(f"CREDITGATE_{name}", None)


@click.command()
@click.option(
    "--allow-foreign-tables",
    is_flag=True,
    help="Add creditgate's tables to a database that holds other tables.",
)
@click.option("--yes", is_flag=True, help="Create a new SQLite file without asking.")
@command_options
def migrate(out: Output, allow_foreign_tables: bool, yes: bool) -> None:
    """Create or upgrade the database schema (no other command does). A new SQLite file is
    created only with --yes or a yes at the prompt (cli/where.py)."""
    from creditgate.storage.migrate import current_revision

    out.local_only("migrate")
    try:
        where.confirm_new(out.database_url, yes)
    except where.NewDatabaseRefused as exc:
        fail(out, str(exc), 409)
    before = out.revision_before_migrating()
    after = current_revision(out.migrated(allow_foreign_tables))
    done = (
        "created"
        if before is None
        else "already up to date"
        if before == after
        else f"upgraded from revision {before}"
    )
    out.emit(
        {"database": out.shown_url, "revision": after, "was": before},
        f"schema {done}: revision {after} ({out.shown_url})",
    )
