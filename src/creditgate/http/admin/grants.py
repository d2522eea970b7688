"""Grants: credits that arrive (a pack, a coupon, a top-up), idempotent."""

from __future__ import annotations

from creditgate.http import schemas
from creditgate.http.admin.route import REPLAYABLE, AdminRoute, Call, Reply, created
from creditgate.services import ledger
from creditgate.services.wire import Grant
from creditgate.web.body import instant


async def grant(call: Call) -> Reply:
    body = call.parsed(schemas.GrantIn)
    team_id = call.path("team_id")
    request = ledger.GrantRequest(
        team_id=team_id,
        credits=body.credits,
        kind=body.kind,
        expires_at=instant(body.expiresAt, "expiresAt"),
        note=body.note,
        idempotency_key=body.idempotencyKey,
    )
    result: ledger.GrantResult = await call.ctx.write(
        ledger.Grant(request, call.ctx.clock()), team_id
    )
    return created(Grant.of(result), result.replayed)


ROUTES = [
    AdminRoute(
        "POST",
        "/admin/teams/{team_id}/grants",
        grant,
        "Grant credits (pack, coupon, top-up)",
        "grantCredits",
        Grant,
        body=schemas.GrantIn,
        status=REPLAYABLE,
        errors=(404, 409),
    ),
]
