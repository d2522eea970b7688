"""API keys: create (shown once), list, revoke, change, rotate."""

from __future__ import annotations

from typing import Any

from creditgate.domain.errors import InvalidInput
from creditgate.http import schemas
from creditgate.http.admin.query import PAGE
from creditgate.http.admin.route import CREATED, NAMED, AdminRoute, Call, Reply
from creditgate.services import keys
from creditgate.services.wire import ApiKey, NewApiKey, RotatedKey
from creditgate.web.body import instant
from creditgate.web.context import blocking


async def create_key(call: Call) -> Reply:
    body = call.parsed(schemas.KeyIn)
    created = await blocking(
        keys.create_key,
        call.ctx.db,
        call.path("team_id"),
        call.ctx.clock(),
        name=body.name,
        cap=body.cap,
        expires_at=instant(body.expiresAt, "expiresAt"),
        rpm=body.rpm,
        metadata=body.metadata,
    )
    return Reply(NewApiKey.made(created.key, created.secret), 201)


async def list_keys(call: Call) -> Reply:
    found = await blocking(keys.page_keys, call.ctx.db, call.path("team_id"), *call.page())
    return Reply([ApiKey.of(k) for k in found.items], cursor=found.cursor)


async def revoke_key(call: Call) -> Reply:
    key = await blocking(keys.revoke_key, call.ctx.db, call.path("key_id"), call.ctx.clock())
    return Reply(ApiKey.of(key))


async def update_key(call: Call) -> Reply:
    """Change the fields named (metadata, rpm, expiresAt); null clears one."""
    body = call.parsed(schemas.KeyPatch)
    given = body.model_fields_set
    if not given:
        raise InvalidInput(
            "Bad Request: nothing to update: give at least one of "
            + ", ".join(type(body).model_fields)
        )
    changes: dict[str, Any] = {}
    if "metadata" in given:
        changes["metadata"] = body.metadata
    if "rpm" in given:
        changes["rpm"] = body.rpm
    if "expiresAt" in given:
        changes["expires_at"] = instant(body.expiresAt, "expiresAt")
    key = await blocking(
        keys.update_key, call.ctx.db, call.path("key_id"), call.ctx.clock(), **changes
    )
    return Reply(ApiKey.of(key))


async def rotate_key(call: Call) -> Reply:
    """A new key (its secret shown once) takes the old one's place; the old one works for
    overlapSeconds more, then expires."""
    body = call.parsed(schemas.KeyRotateIn)
    rotation = await blocking(
        keys.rotate_key, call.ctx.db, call.path("key_id"), call.ctx.clock(), body.overlapSeconds
    )
    new = rotation.new
    return Reply(RotatedKey.rotated(new.key, new.secret, rotation.old), 201)


ROUTES = [
    AdminRoute(
        "GET",
        "/admin/teams/{team_id}/keys",
        list_keys,
        "List a team's API keys",
        "listKeys",
        ApiKey,
        many=True,
        query=PAGE,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        "/admin/teams/{team_id}/keys",
        create_key,
        "Create an API key (shown once)",
        "createKey",
        NewApiKey,
        body=schemas.KeyIn,
        status=CREATED,
        errors=(404, 409),
    ),
    AdminRoute(
        "POST",
        "/admin/keys/{key_id}/revoke",
        revoke_key,
        "Revoke an API key",
        "revokeKey",
        ApiKey,
        errors=NAMED,
    ),
    AdminRoute(
        "PATCH",
        "/admin/keys/{key_id}",
        update_key,
        "Change a key's metadata, rpm or expiry",
        "updateKey",
        ApiKey,
        body=schemas.KeyPatch,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        "/admin/keys/{key_id}/rotate",
        rotate_key,
        "Rotate a key: a new secret (shown once) under its name, cap, rpm and metadata; the old "
        "key works for overlapSeconds more, then expires",
        "rotateKey",
        RotatedKey,
        body=schemas.KeyRotateIn,
        body_optional=True,
        status=CREATED,
        errors=(404, 409),
    ),
]
