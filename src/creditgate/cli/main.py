"""Commands for operators and scripts. Each one is a thin call into a service."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import click
import httpx
import orjson
from pydantic import ValidationError

from creditgate import __version__
from creditgate.app import serve as serve_app
from creditgate.cli import ledger as ledger_commands
from creditgate.cli import where
from creditgate.cli.output import Output, command_options, fail, table
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import Instant, InvalidInstant, format_iso, now, parse_iso
from creditgate.domain.plans import BILLING_INTERVALS, Plan
from creditgate.services import (
    account,
    alerts,
    audit,
    ledger,
    pages,
    plans,
    teams,
    topups,
    webhooks,
)
from creditgate.services import keys as key_service
from creditgate.services.wire import (
    charge_json,
    delivery_json,
    endpoint_json,
    fired_json,
    grant_json,
    key_json,
    plan_json,
    rule_json,
    team_json,
    topup_json,
    usage_json,
)
from creditgate.settings import SecretError, Settings
from creditgate.storage.database import database_errors, display_url, explain
from creditgate.storage.migrate import current_revision


def _instant(text: str | None, name: str) -> Instant | None:
    if text is None:
        return None
    try:
        return parse_iso(text)
    except InvalidInstant as exc:
        raise InvalidInput(f"{name}: {exc}") from exc


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What an update changed, e.g. "credits 3000 -> 3500"; empty when nothing did."""

    def show(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    return ", ".join(
        f"{k} {show(before[k])} -> {show(after[k])}" for k in after if before[k] != after[k]
    )


class JsonUsage(click.Group):
    """With `--json` anywhere on the line, a usage error (a bad option, a value of the wrong
    type) is one JSON object too, as every other refusal is; exit status 2 as click's."""

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


@click.group(cls=JsonUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="creditgate")
def main() -> None:
    """creditgate: a credit ledger and metering service behind the Firecrawl account API."""


@main.command()
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


@main.command()
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


# --- teams ----------------------------------------------------------------------------------


@main.group()
def team() -> None:
    """Teams: the wallets."""


@team.command("create")
@click.argument("name")
@click.option("--plan", default="free", show_default=True)
@click.option("--anchor", default=None, help="Start of the first billing period (ISO 8601).")
@click.option("--allow-overage", is_flag=True, help="Let usage go past the balance.")
@command_options
def team_create(out: Output, name: str, plan: str, anchor: str | None, allow_overage: bool) -> None:
    """Create a team; its plan's first credits are granted at once."""
    created = teams.create_team(
        out.db,
        name,
        now(),
        plan_id=plan,
        anchor=_instant(anchor, "anchor"),
        allow_overage=allow_overage,
    )
    out.emit(team_json(created), f"team {created.id} ({created.name}, plan {created.plan_id})")


@team.command("list")
@command_options
def team_list(out: Output) -> None:
    """List every team (read page by page)."""
    found = pages.every(lambda cursor: teams.page_teams(out.db, pages.MAX_LIMIT, cursor))
    out.emit_list(
        [team_json(t) for t in found],
        table(
            ["id", "name", "plan", "anchor", "suspended"],
            [[t.id, t.name, t.plan_id, format_iso(t.anchor), t.suspended] for t in found],
        ),
    )


@team.command("update")
@click.argument("team_id")
@click.option("--plan", default=None)
@click.option("--name", default=None)
@click.option("--suspend/--resume", default=None, help="Suspended teams' keys get 403.")
@click.option("--overage/--no-overage", default=None)
@click.option(
    "--now",
    "plan_now",
    is_flag=True,
    help="With --plan: a plan with more credits raises this period's credits at once.",
)
@command_options
def team_update(
    out: Output,
    team_id: str,
    plan: str | None,
    name: str | None,
    suspend: bool | None,
    overage: bool | None,
    plan_now: bool,
) -> None:
    """Change a team's plan, name, suspension or overage: only the options given."""
    if (plan, name, suspend, overage) == (None, None, None, None):
        raise InvalidInput(
            "nothing to update: give --plan, --name, --suspend/--resume or --overage/--no-overage"
        )
    before = teams.get_team(out.db, team_id)
    changed = teams.update_team(
        out.db,
        team_id,
        now(),
        suspended=suspend,
        allow_overage=overage,
        plan_id=plan,
        name=name,
        plan_now=plan_now,
    )
    changes = _changes(team_json(before), team_json(changed))
    note = (
        " (its limits apply at once; this period's credits were raised to the new plan's)"
        if plan_now
        else " (its limits apply at once, its credits from the next billing period)"
    )
    out.emit(
        team_json(changed),
        f"team {changed.id}: "
        + (changes + (note if before.plan_id != changed.plan_id else "") or "nothing changed"),
    )


# --- keys -----------------------------------------------------------------------------------


@main.group()
def key() -> None:
    """API keys (fc-...)."""


@key.command("create")
@click.argument("team_id")
@click.option("--name", default=None)
@click.option("--cap", type=int, default=None, help="Credits per billing period, at most.")
@click.option("--expires", default=None, help="ISO 8601: refused from this instant on.")
@click.option("--rpm", type=int, default=None, help="Its own requests per minute (else none).")
@click.option("--metadata", default=None, help='A flat JSON object, e.g. \'{"owner":"ci"}\'.')
@command_options
def key_create(
    out: Output,
    team_id: str,
    name: str | None,
    cap: int | None,
    expires: str | None,
    rpm: int | None,
    metadata: str | None,
) -> None:
    """Create a key. The key is printed once and never stored."""
    created = key_service.create_key(
        out.db,
        team_id,
        now(),
        name=name,
        cap=cap,
        expires_at=_instant(expires, "--expires"),
        rpm=rpm,
        metadata=_metadata(metadata),
    )
    out.emit(
        {**key_json(created.key), "key": created.secret},
        f"{created.secret}\n(key {created.key.id}, name {created.key.name}; "
        "store it now, it is not shown again)",
    )


@key.command("list")
@click.argument("team_id")
@command_options
def key_list(out: Output, team_id: str) -> None:
    """List every key of a team (never the keys themselves)."""
    found = pages.every(
        lambda cursor: key_service.page_keys(out.db, team_id, pages.MAX_LIMIT, cursor)
    )
    out.emit_list(
        [key_json(k) for k in found],
        table(
            ["id", "name", "hint", "cap", "rpm", "revoked", "expires", "last used"],
            [
                [
                    k.id,
                    k.name,
                    k.hint,
                    k.cap,
                    k.rpm,
                    k.revoked_at is not None,
                    _when(k.expires_at),
                    _when(k.last_used_at),
                ]
                for k in found
            ],
        ),
    )


@key.command("revoke")
@click.argument("key_id")
@command_options
def key_revoke(out: Output, key_id: str) -> None:
    """Revoke a key: it gets 401 from now on; its usage stays in history."""
    revoked = key_service.revoke_key(out.db, key_id, now())
    out.emit(key_json(revoked), f"key {revoked.id} ({revoked.name}) revoked")


# --- key lifecycle (issue #11): update, rotate ------------------------------------------------


def _when(instant: Instant | None) -> str:
    return "" if instant is None else format_iso(instant)


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--metadata: not JSON ({exc})", field="metadata") from exc
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    return value


@key.command("update")
@click.argument("key_id")
@click.option("--metadata", default=None, help="A flat JSON object (replaces the metadata).")
@click.option("--clear-metadata", is_flag=True, help="Remove the metadata.")
@click.option("--rpm", type=int, default=None, help="Its own requests per minute.")
@click.option("--no-rpm", is_flag=True, help="No own rate limit (the team's only).")
@click.option("--expires", default=None, help="ISO 8601: refused from this instant on.")
@click.option("--no-expiry", is_flag=True, help="Never expires.")
@command_options
def key_update(
    out: Output,
    key_id: str,
    metadata: str | None,
    clear_metadata: bool,
    rpm: int | None,
    no_rpm: bool,
    expires: str | None,
    no_expiry: bool,
) -> None:
    """Change a key's metadata, own rate limit or expiry."""
    changes: dict[str, Any] = {}
    for given, cleared, name in (
        (metadata, clear_metadata, "metadata"),
        (rpm, no_rpm, "rpm"),
        (expires, no_expiry, "expires"),
    ):
        if given is not None and cleared:
            raise InvalidInput(f"give --{name} or its clearing flag, not both", field=name)
    if metadata is not None or clear_metadata:
        changes["metadata"] = _metadata(metadata)
    if rpm is not None or no_rpm:
        changes["rpm"] = rpm
    if expires is not None or no_expiry:
        changes["expires_at"] = _instant(expires, "--expires")
    if not changes:
        raise InvalidInput("nothing to update: give --metadata, --rpm or --expires (or a --no-)")
    updated = key_service.update_key(out.db, key_id, now(), **changes)
    out.emit(key_json(updated), f"key {updated.id} ({updated.name}) updated")


@key.command("rotate")
@click.argument("key_id")
@click.option(
    "--overlap-seconds",
    type=int,
    default=0,
    show_default=True,
    help="How long the old key keeps working beside the new one; then it expires.",
)
@command_options
def key_rotate(out: Output, key_id: str, overlap_seconds: int) -> None:
    """Replace a key by a new one (printed once) with its name, cap, rpm and metadata; the old
    one is renamed "<name> (rotated ...)" and expires after the overlap."""
    rotation = key_service.rotate_key(out.db, key_id, now(), overlap_seconds)
    new, old = rotation.new, rotation.old
    out.emit(
        {**key_json(new.key), "key": new.secret, "replaced": key_json(old)},
        f"{new.secret}\n(key {new.key.id}, name {new.key.name}; store it now, it is not shown "
        f"again)\nold key {old.id} is now {old.name!r} and expires at {_when(old.expires_at)}",
    )


# --- alerts and webhooks --------------------------------------------------------------------


@main.group()
def alert() -> None:
    """Alert rules: thresholds that fire a webhook event once per billing period."""


@alert.command("add")
@click.argument("team_id")
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
    rule = alerts.add_rule(out.db, team_id, kind, threshold, now(), key_id)
    out.emit(rule_json(rule), f"alert rule {rule.id}: {kind} {threshold}")


@alert.command("list")
@click.argument("team_id")
@command_options
def alert_list(out: Output, team_id: str) -> None:
    """A team's rules."""
    rules = alerts.list_rules(out.db, team_id)
    out.emit_list(
        [rule_json(r) for r in rules],
        table(
            ["id", "kind", "threshold", "key"],
            [[r.id, str(r.kind), r.threshold, r.key_id or "(team)"] for r in rules],
        ),
    )


@alert.command("remove")
@click.argument("team_id")
@click.argument("rule_id")
@command_options
def alert_remove(out: Output, team_id: str, rule_id: str) -> None:
    """Remove a rule (what it fired stays in the log)."""
    alerts.remove_rule(out.db, team_id, rule_id)
    out.emit({"id": rule_id, "removed": True}, f"alert rule {rule_id} removed")


@alert.command("fired")
@click.argument("team_id")
@command_options
def alert_fired(out: Output, team_id: str) -> None:
    """Alerts the team fired, newest first."""
    rows = alerts.fired(out.db, team_id)
    out.emit_list(
        [fired_json(r) for r in rows],
        table(
            ["fired", "rule", "period", "event"],
            [[format_iso(r.fired_at), r.rule_id, format_iso(r.period_start), r.type] for r in rows],
        ),
    )


@main.group()
def topup() -> None:
    """Automatic top-ups: grant credits when a charge leaves a team under a threshold."""


@topup.command("add")
@click.argument("team_id")
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
    rule = topups.add_rule(
        out.db,
        team_id,
        below,
        credits,
        now(),
        expires_days=expires_days,
        max_per_period=max_per_period,
    )
    out.emit(
        topup_json(rule, None, 0),
        f"top-up rule {rule.id}: below {below}, grant {credits}, at most {max_per_period} a period",
    )


@topup.command("list")
@click.argument("team_id")
@command_options
def topup_list(out: Output, team_id: str) -> None:
    """A team's top-up rules, with how many each granted this period."""
    found = topups.list_rules(out.db, team_id)
    out.emit_list(
        [topup_json(*row) for row in found],
        table(
            ["id", "below", "credits", "expires days", "max/period", "granted"],
            [
                [r.id, r.below, r.credits, r.expires_days or "never", r.max_per_period, n]
                for r, _, n in found
            ],
        ),
    )


@topup.command("remove")
@click.argument("team_id")
@click.argument("rule_id")
@command_options
def topup_remove(out: Output, team_id: str, rule_id: str) -> None:
    """Remove a top-up rule (what it granted stays)."""
    topups.remove_rule(out.db, team_id, rule_id)
    out.emit({"id": rule_id, "removed": True}, f"top-up rule {rule_id} removed")


@main.group()
def webhook() -> None:
    """Webhook endpoints (Standard Webhooks: signed with a whsec_ secret)."""


@webhook.command("add")
@click.argument("url")
@click.option("--team", "team_id", default=None, help="Only this team's events (default: all).")
@click.option("--event", "types", multiple=True, help="Only this event type (repeatable).")
@command_options
def webhook_add(out: Output, url: str, team_id: str | None, types: tuple[str, ...]) -> None:
    """Add an endpoint; its secret is printed once."""
    made = webhooks.add_endpoint(out.db, url, now(), team_id, list(types) or None)
    out.emit(
        endpoint_json(made.endpoint, made.secret),
        f"{made.secret}\n(endpoint {made.endpoint.id}; store the secret now, it is not shown "
        "again)",
    )


@webhook.command("list")
@click.option("--team", "team_id", default=None)
@command_options
def webhook_list(out: Output, team_id: str | None) -> None:
    """Endpoints, with the team each serves and whether it is disabled."""
    found = webhooks.list_endpoints(out.db, team_id)
    out.emit_list(
        [endpoint_json(e) for e in found],
        table(
            ["id", "url", "team", "disabled"],
            [[e.id, e.url, e.team_id or "(all)", e.disabled_at is not None] for e in found],
        ),
    )


@webhook.command("remove")
@click.argument("endpoint_id")
@command_options
def webhook_remove(out: Output, endpoint_id: str) -> None:
    """Disable an endpoint: nothing more is sent to it; its log stays."""
    found = webhooks.remove_endpoint(out.db, endpoint_id, now())
    out.emit(endpoint_json(found), f"endpoint {found.id} disabled")


@webhook.command("rotate")
@click.argument("endpoint_id")
@command_options
def webhook_rotate(out: Output, endpoint_id: str) -> None:
    """A new secret, printed once; the old one keeps signing beside it for 24 hours."""
    made = webhooks.rotate_secret(out.db, endpoint_id, now())
    until = made.endpoint.previous_until or 0
    out.emit(
        endpoint_json(made.endpoint, made.secret),
        f"{made.secret}\n(the old secret also signs until {format_iso(until)})",
    )


@webhook.command("test")
@click.argument("endpoint_id")
@command_options
def webhook_test(out: Output, endpoint_id: str) -> None:
    """Send a webhook.test event now and say what the endpoint answered."""

    async def send() -> webhooks.Sent:
        async with httpx.AsyncClient() as client:
            return await webhooks.send_test(out.db, client, endpoint_id, now())

    sent = asyncio.run(send())
    data = {"delivered": sent.ok, "status": sent.code, "error": sent.error}
    out.emit(data, f"delivered (HTTP {sent.code})" if sent.ok else f"not delivered: {sent.error}")
    if not sent.ok:
        sys.exit(1)


@webhook.command("deliveries")
@click.argument("endpoint_id")
@command_options
def webhook_deliveries(out: Output, endpoint_id: str) -> None:
    """The endpoint's deliveries, newest first (every one, read page by page)."""
    found = pages.every(
        lambda cursor: webhooks.page_deliveries(out.db, endpoint_id, pages.MAX_LIMIT, cursor)
    )
    out.emit_list(
        [delivery_json(d) for d in found],
        table(
            ["event", "type", "status", "attempts", "last"],
            [
                [d.event_id, d.event_type, d.status, d.attempts, d.last_status or d.last_error]
                for d in found
            ],
        ),
    )


# --- plans ----------------------------------------------------------------------------------


@main.group()
def plan() -> None:
    """Plans: credits per period and limits."""


def describe_plan(p: Plan) -> str:
    """What a plan grants, truthfully: credits come every month for monthly and yearly plans."""
    if p.interval == "once":
        grants = f"{p.credits} credits once, never renewed"
    else:
        grants = f"{p.credits} credits a month, billed {p.interval}ly"
    return (
        f"{grants}; concurrency {p.concurrency}, {p.scrape_rpm} scrape/min, {p.crawl_rpm} crawl/min"
    )


@plan.command("list")
@command_options
def plan_list(out: Output) -> None:
    """List plans. Credits are granted every month, also on yearly plans (billed yearly)."""
    found = pages.every(lambda cursor: plans.page_plans(out.db, pages.MAX_LIMIT, cursor))
    out.emit_list(
        [plan_json(p) for p in found],
        table(
            ["id", "credits", "granted", "billed", "concurrency", "scrape/min", "crawl/min"],
            [
                [
                    p.id,
                    p.credits,
                    "once" if p.interval == "once" else "monthly",
                    "once" if p.interval == "once" else f"{p.interval}ly",
                    p.concurrency,
                    p.scrape_rpm,
                    p.crawl_rpm,
                ]
                for p in found
            ],
        ),
    )


CREDITS_HELP = (
    "Credits granted every month, also when billed yearly (a once plan grants them once)."
)


@plan.command("create")
@click.argument("plan_id")
@click.option("--credits", type=int, required=True, help=CREDITS_HELP)
@click.option(
    "--interval",
    type=click.Choice(BILLING_INTERVALS),
    default="month",
    show_default=True,
    help="How it is billed; credits still reset monthly on a yearly plan.",
)
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option("--scrape-rpm", type=int, default=10, show_default=True)
@click.option("--crawl-rpm", type=int, default=2, show_default=True)
@command_options
def plan_create(
    out: Output,
    plan_id: str,
    credits: int,
    interval: str,
    concurrency: int,
    scrape_rpm: int,
    crawl_rpm: int,
) -> None:
    """Create a plan; a plan that exists is refused (change it with plan update)."""
    new = Plan(plan_id, credits, interval, concurrency, scrape_rpm, crawl_rpm)  # type: ignore[arg-type]
    saved = plans.create_plan(out.db, new, now())
    out.emit(plan_json(saved), f"plan {saved.id} created: {describe_plan(saved)}")


@plan.command("update")
@click.argument("plan_id")
@click.option("--credits", type=int, default=None, help=CREDITS_HELP)
@click.option(
    "--interval",
    type=click.Choice(BILLING_INTERVALS),
    default=None,
    help="How it is billed; credits still reset monthly on a yearly plan.",
)
@click.option("--concurrency", type=int, default=None)
@click.option("--scrape-rpm", type=int, default=None)
@click.option("--crawl-rpm", type=int, default=None)
@command_options
def plan_update(
    out: Output,
    plan_id: str,
    credits: int | None,
    interval: str | None,
    concurrency: int | None,
    scrape_rpm: int | None,
    crawl_rpm: int | None,
) -> None:
    """Change only the options given; the rest stay as they are. Credits and interval apply from
    each team's next period; concurrency and rate limits at once."""
    if (credits, interval, concurrency, scrape_rpm, crawl_rpm) == (None,) * 5:
        raise InvalidInput(
            "nothing to update: give --credits, --interval, --concurrency, --scrape-rpm "
            "or --crawl-rpm"
        )
    before = plans.get_plan(out.db, plan_id)
    saved = plans.change_plan(
        out.db,
        plan_id,
        now(),
        credits=credits,
        interval=interval,
        concurrency=concurrency,
        scrape_rpm=scrape_rpm,
        crawl_rpm=crawl_rpm,
    )
    changes = _changes(plan_json(before), plan_json(saved))
    out.emit(
        plan_json(saved),
        f"plan {saved.id}: "
        + (
            f"{changes} (credits and interval from each team's next period, limits at once)"
            if changes
            else "nothing changed"
        )
        + f"; now {describe_plan(saved)}",
    )


@plan.command(
    "set",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
def plan_set() -> None:
    """Replaced by plan create and plan update."""
    raise click.UsageError(
        "plan set is gone: `plan create ID --credits N ...` makes a plan, "
        "`plan update ID --credits N ...` changes only the options given"
    )


# --- credits --------------------------------------------------------------------------------


class NegativeNumbers(click.Command):
    """A command with a number argument: `grant TEAM -5` reaches the command, which says what is
    wrong with -5, where click alone would answer "No such option: -5"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(NEGATIVE.match(arg) for arg in args):
            ctx.ignore_unknown_options = True  # -5 is then an argument like any other
        return super().parse_args(ctx, args)


NEGATIVE = re.compile(r"-\d")


@main.command(cls=NegativeNumbers)
@click.argument("team_id")
@click.argument("credits", type=int)
@click.option("--expires", default=None, help="When the credits expire (ISO 8601); default never.")
@click.option("--kind", type=click.Choice(["pack", "coupon", "topup"]), default="pack")
@click.option("--note", default=None)
@click.option("--id", "idempotency_key", default=None, help="Idempotency key.")
@command_options
def grant(
    out: Output,
    team_id: str,
    credits: int,
    expires: str | None,
    kind: str,
    note: str | None,
    idempotency_key: str | None,
) -> None:
    """Add credits to a team (a pack, coupon or top-up)."""
    if credits < 1:
        raise InvalidInput(f"credits must be a positive integer (got {credits})", field="credits")
    result = ledger.grant(
        out.db,
        ledger.GrantRequest(
            team_id=team_id,
            credits=credits,
            kind=kind,
            expires_at=_instant(expires, "expires"),
            note=note,
            idempotency_key=idempotency_key,
        ),
        now(),
    )
    out.emit(
        grant_json(result) | {"replayed": result.replayed},
        f"granted {result.credits} credits; team has {result.remaining_credits} available"
        + (" (replayed)" if result.replayed else ""),
    )


@main.command(cls=NegativeNumbers)
@click.argument("key")
@click.argument("credits", type=int)
@click.option("--endpoint", default=None, help="scrape, crawl, map, search, extract, ...")
@click.option("--at", default=None, help="When the work happened (ISO 8601); default now.")
@click.option("--job-id", default=None)
@click.option("--target", default=None, help="The URL worked on.")
@click.option("--id", "idempotency_key", default=None, help="Idempotency key.")
@command_options
def charge(
    out: Output,
    key: str,
    credits: int,
    endpoint: str | None,
    at: str | None,
    job_id: str | None,
    target: str | None,
    idempotency_key: str | None,
) -> None:
    """Record usage by KEY (the fc- key or its id). Refused if it does not fit."""
    if credits < 0:
        raise InvalidInput(f"credits must not be negative (got {credits})", field="credits")
    result = ledger.charge(
        out.db,
        ledger.ChargeRequest(
            key=key,
            credits=credits,
            at=_instant(at, "at"),
            endpoint=endpoint,
            job_id=job_id,
            target=target,
            idempotency_key=idempotency_key,
        ),
        now(),
    )
    out.emit(
        charge_json(result) | {"replayed": result.replayed},
        f"charged {result.credits} credits; team has {result.remaining_credits} available"
        + (" (replayed)" if result.replayed else ""),
    )


@main.command()
@click.argument("team_id")
@click.option("--by-key", is_flag=True, help="One row per period and API key.")
@command_options
def usage(out: Output, team_id: str, by_key: bool) -> None:
    """Credits used per billing period (from the first with usage to the current one), and
    what remains now. By key, a period no key used is a row with no key and 0 credits."""
    found = teams.get_team(out.db, team_id)
    at = now()
    balance = account.credit_usage(out.db, found, at)
    rows = account.history(out.db, found, by_key, at, every_period=True)
    periods = [usage_json(r) for r in rows]
    text = table(
        ["period start", "period end", "key", "credits used"],
        [[p["startDate"], p["endDate"], p["apiKey"], p["creditsUsed"]] for p in periods],
    )
    out.emit(
        {
            "teamId": found.id,
            "remainingCredits": balance.remaining,
            "planCredits": balance.plan_credits,
            "periods": periods,
        },
        f"{text}\n\nremaining: {balance.remaining} of {balance.plan_credits} plan credits",
    )


@main.command()
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


# --- the ledger on view and its export (cli/ledger.py) ----------------------------------------

main.add_command(ledger_commands.ledger)
main.add_command(ledger_commands.export)
