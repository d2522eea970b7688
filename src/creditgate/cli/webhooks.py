"""`creditgate webhook ...`: webhook endpoints, through the database or, with --server, the
admin API's webhook routes; either way the admin API's endpoint answer."""

from __future__ import annotations

import sys
from typing import Any

import click

from creditgate.cli.args import resolve_team, segment
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.instants import now


@click.group()
def webhook() -> None:
    """Webhook endpoints (Standard Webhooks: signed with a whsec_ secret)."""


@webhook.command("add")
@click.argument("url")
@click.option("--team", "team_id", default=None, help="Only this team's events (default: all).")
@click.option("--event", "types", multiple=True, help="Only this event type (repeatable).")
@command_options
def webhook_add(out: Output, url: str, team_id: str | None, types: tuple[str, ...]) -> None:
    """Add an endpoint; its secret is printed once."""
    found = None if team_id is None else resolve_team(out, team_id)
    if out.remote is not None:
        body = {"url": url, "teamId": found, "eventTypes": list(types) or None}
        made = out.remote.post("/admin/webhooks", body)
    else:
        from creditgate.services import webhooks
        from creditgate.services.wire import endpoint_json

        added = webhooks.add_endpoint(out.db, url, now(), found, list(types) or None)
        made = endpoint_json(added.endpoint, added.secret)
    out.emit(
        made,
        f"{made['secret']}\n(endpoint {made['id']}; store the secret now, it is not shown again)",
    )


@webhook.command("list")
@click.option("--team", "team_id", default=None)
@command_options
def webhook_list(out: Output, team_id: str | None) -> None:
    """Endpoints, with the team each serves and whether it is disabled."""
    found_team = None if team_id is None else resolve_team(out, team_id)
    found: list[dict[str, Any]]
    if out.remote is not None:
        query = {} if found_team is None else {"teamId": found_team}
        found = out.remote.get("/admin/webhooks", **query)
    else:
        from creditgate.services import webhooks
        from creditgate.services.wire import endpoint_json

        found = [endpoint_json(e) for e in webhooks.list_endpoints(out.db, found_team)]
    out.emit_list(
        found,
        table(
            ["id", "url", "team", "disabled"],
            [
                [e["id"], e["url"], e["teamId"] or "(all)", e["disabledAt"] is not None]
                for e in found
            ],
        ),
    )


@webhook.command("remove")
@click.argument("endpoint_id")
@command_options
def webhook_remove(out: Output, endpoint_id: str) -> None:
    """Disable an endpoint: nothing more is sent to it; its log stays."""
    if out.remote is not None:
        found = out.remote.delete(f"/admin/webhooks/{segment(endpoint_id)}")
    else:
        from creditgate.services import webhooks
        from creditgate.services.wire import endpoint_json

        found = endpoint_json(webhooks.remove_endpoint(out.db, endpoint_id, now()))
    out.emit(found, f"endpoint {found['id']} disabled")


@webhook.command("rotate")
@click.argument("endpoint_id")
@command_options
def webhook_rotate(out: Output, endpoint_id: str) -> None:
    """A new secret, printed once; the old one keeps signing beside it for 24 hours."""
    if out.remote is not None:
        made = out.remote.post(f"/admin/webhooks/{segment(endpoint_id)}/rotate")
    else:
        from creditgate.services import webhooks
        from creditgate.services.wire import endpoint_json

        rotated = webhooks.rotate_secret(out.db, endpoint_id, now())
        made = endpoint_json(rotated.endpoint, rotated.secret)
    out.emit(
        made,
        f"{made['secret']}\n(the old secret also signs until {made['previousSecretUntil']})",
    )


@webhook.command("test")
@click.argument("endpoint_id")
@command_options
def webhook_test(out: Output, endpoint_id: str) -> None:
    """Send a webhook.test event now and say what the endpoint answered."""
    if out.remote is not None:
        data = out.remote.post(f"/admin/webhooks/{segment(endpoint_id)}/test")
    else:
        import asyncio

        import httpx

        from creditgate.services import webhooks

        db = out.db

        async def send() -> webhooks.Sent:
            async with httpx.AsyncClient() as client:
                return await webhooks.send_test(db, client, endpoint_id, now())

        sent = asyncio.run(send())
        data = {"delivered": sent.ok, "status": sent.code, "error": sent.error}
    out.emit(
        data,
        f"delivered (HTTP {data['status']})"
        if data["delivered"]
        else f"not delivered: {data['error']}",
    )
    if not data["delivered"]:
        sys.exit(1)


@webhook.command("deliveries")
@click.argument("endpoint_id")
@command_options
def webhook_deliveries(out: Output, endpoint_id: str) -> None:
    """The endpoint's deliveries, newest first (every one, read page by page)."""
    if out.remote is not None:
        found = out.remote.every(f"/admin/webhooks/{segment(endpoint_id)}/deliveries")
    else:
        from creditgate.services import pages, webhooks
        from creditgate.services.wire import delivery_json

        db = out.db
        every = pages.every(
            lambda cursor: webhooks.page_deliveries(db, endpoint_id, pages.MAX_LIMIT, cursor)
        )
        found = [delivery_json(d) for d in every]
    out.emit_list(
        found,
        table(
            ["event", "type", "status", "attempts", "last"],
            [
                [
                    d["eventId"],
                    d["type"],
                    d["status"],
                    d["attempts"],
                    d["lastStatus"] or d["lastError"],
                ]
                for d in found
            ],
        ),
    )
