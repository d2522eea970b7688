"""`creditgate key create|list|revoke|update|rotate`: API keys (fc-...), through the database
or, with --server, the admin API's key routes; either way the admin API's key answer."""

from __future__ import annotations

from typing import Any

import click

from creditgate.cli.args import checked_iso, instant, resolve_team, segment, when
from creditgate.cli.args import metadata as parse_metadata
from creditgate.cli.output import Output, command_options, table
from creditgate.domain.errors import InvalidInput
from creditgate.domain.instants import now


@click.group()
def key() -> None:
    """API keys (fc-...)."""


@key.command("create")
@click.argument("team_id", metavar="TEAM")
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
    """Create a key for TEAM (its id or name). The key is printed once and never stored."""
    if out.remote is not None:
        body = {
            "name": name,
            "cap": cap,
            "expiresAt": checked_iso(expires, "--expires"),
            "rpm": rpm,
            "metadata": parse_metadata(metadata),
        }
        made = out.remote.post(f"/admin/teams/{segment(resolve_team(out, team_id))}/keys", body)
    else:
        from creditgate.services import keys
        from creditgate.services.wire import key_json

        created = keys.create_key(
            out.db,
            resolve_team(out, team_id),
            now(),
            name=name,
            cap=cap,
            expires_at=instant(expires, "--expires"),
            rpm=rpm,
            metadata=parse_metadata(metadata),
        )
        made = {**key_json(created.key), "key": created.secret}
    out.emit(
        made,
        f"{made['key']}\n(key {made['id']}, name {made['name']}; "
        "store it now, it is not shown again)",
    )


def every_key(out: Output, team_id: str) -> list[dict[str, Any]]:
    """Every key of a team (its id or name), as the admin API lists them."""
    found = resolve_team(out, team_id)
    if out.remote is not None:
        return out.remote.every(f"/admin/teams/{segment(found)}/keys")
    from creditgate.services import keys, pages
    from creditgate.services.wire import key_json

    db = out.db
    return [
        key_json(k)
        for k in pages.every(lambda cursor: keys.page_keys(db, found, pages.MAX_LIMIT, cursor))
    ]


@key.command("list")
@click.argument("team_id", metavar="TEAM")
@command_options
def key_list(out: Output, team_id: str) -> None:
    """List every key of a team (its id or name; never the keys themselves)."""
    found = every_key(out, team_id)
    out.emit_list(
        found,
        table(
            ["id", "name", "hint", "cap", "rpm", "revoked", "expires", "last used"],
            [
                [
                    k["id"],
                    k["name"],
                    k["hint"],
                    k["cap"],
                    k["rpm"],
                    k["revokedAt"] is not None,
                    when(k["expiresAt"]),
                    when(k["lastUsedAt"]),
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
    if out.remote is not None:
        revoked = out.remote.post(f"/admin/keys/{segment(key_id)}/revoke")
    else:
        from creditgate.services import keys
        from creditgate.services.wire import key_json

        revoked = key_json(keys.revoke_key(out.db, key_id, now()))
    out.emit(revoked, f"key {revoked['id']} ({revoked['name']}) revoked")


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
    given: dict[str, Any] = {}  # the admin API's field names
    for value, cleared, name in (
        (metadata, clear_metadata, "metadata"),
        (rpm, no_rpm, "rpm"),
        (expires, no_expiry, "expires"),
    ):
        if value is not None and cleared:
            raise InvalidInput(f"give --{name} or its clearing flag, not both", field=name)
    if metadata is not None or clear_metadata:
        given["metadata"] = parse_metadata(metadata)
    if rpm is not None or no_rpm:
        given["rpm"] = rpm
    if expires is not None or no_expiry:
        given["expiresAt"] = checked_iso(expires, "--expires")
    if not given:
        raise InvalidInput("nothing to update: give --metadata, --rpm or --expires (or a --no-)")
    if out.remote is not None:
        updated = out.remote.patch(f"/admin/keys/{segment(key_id)}", given)
    else:
        from creditgate.services import keys
        from creditgate.services.wire import key_json

        local = {("expires_at" if k == "expiresAt" else k): v for k, v in given.items()}
        if "expires_at" in local:
            local["expires_at"] = instant(local["expires_at"], "--expires")
        updated = key_json(keys.update_key(out.db, key_id, now(), **local))
    out.emit(updated, f"key {updated['id']} ({updated['name']}) updated")


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
    if out.remote is not None:
        body = {"overlapSeconds": overlap_seconds}
        made = out.remote.post(f"/admin/keys/{segment(key_id)}/rotate", body)
    else:
        from creditgate.services import keys
        from creditgate.services.wire import key_json

        rotation = keys.rotate_key(out.db, key_id, now(), overlap_seconds)
        new = rotation.new
        made = {**key_json(new.key), "key": new.secret, "replaced": key_json(rotation.old)}
    old = made["replaced"]
    out.emit(
        made,
        f"{made['key']}\n(key {made['id']}, name {made['name']}; store it now, it is not shown "
        f"again)\nold key {old['id']} is now {old['name']!r} and expires at "
        f"{when(old['expiresAt'])}",
    )
