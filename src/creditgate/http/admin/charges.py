"""Charges: one (idempotent, may be backdated), a batch, and the check that writes nothing."""

from __future__ import annotations

from creditgate.domain.errors import InvalidInput, LedgerError
from creditgate.http import schemas
from creditgate.http.admin.route import REPLAYABLE, AdminRoute, Call, Reply, created
from creditgate.services import ingest, ledger, reservations
from creditgate.services.wire import BatchOutcome, Charge, CheckVerdict
from creditgate.web.body import instant, parse, read_json
from creditgate.web.context import blocking
from creditgate.web.errors import HTTPError
from creditgate.web.requestlog import fields


def charge_request(body: schemas.ChargeIn) -> ledger.ChargeRequest:
    return ledger.ChargeRequest(
        key=body.key_ref(),
        credits=body.credits,
        at=instant(body.at, "at"),
        endpoint=body.endpoint,
        api_version=body.apiVersion,
        job_id=body.jobId,
        target=body.target,
        idempotency_key=body.idempotencyKey,
    )


async def charge(call: Call) -> Reply:
    request = charge_request(call.parsed(schemas.ChargeIn))
    result: ledger.ChargeResult = await call.ctx.write(ledger.Charge(request, call.ctx.clock()))
    logged = fields(call.request)
    logged.team = result.team_id
    if not result.replayed:
        logged.charged = result.credits
    return created(Charge.of(result), result.replayed)


async def charge_batch(call: Call) -> Reply:
    ctx = call.ctx
    data = await read_json(call.request, ctx.max_body_bytes * 4)  # a batch's own limit
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise InvalidInput("Bad Request: events: must be a list of charges", field="events")
    if len(events) > ctx.max_batch_events:
        raise HTTPError(413, f"Too many events: at most {ctx.max_batch_events} per request.")
    parsed: list[ledger.ChargeRequest | LedgerError] = []
    for event in events:
        try:
            parsed.append(charge_request(parse(schemas.ChargeIn, event)))
        except LedgerError as exc:
            parsed.append(exc)
    outcomes = await blocking(ingest.charge_batch, ctx.db, parsed, ctx.clock())
    return Reply([BatchOutcome.of(o) for o in outcomes])


async def check(call: Call) -> Reply:
    body = call.parsed(schemas.CheckIn)
    verdict = await blocking(
        reservations.check, call.ctx.db, body.key_ref(), body.credits, call.ctx.clock()
    )
    return Reply(CheckVerdict.of(verdict))


ROUTES = [
    AdminRoute(
        "POST",
        "/admin/charges",
        charge,
        "Record a charge (idempotent, may be backdated)",
        "recordCharge",
        Charge,
        body=schemas.ChargeIn,
        status=REPLAYABLE,
        errors=(402, 404, 409),
    ),
    AdminRoute(
        "POST",
        "/admin/charges/batch",
        charge_batch,
        "Record up to 1,000 charges",
        "recordCharges",
        BatchOutcome,
        many=True,
        body=schemas.ChargeBatchIn,
        raw_body=True,
    ),
    AdminRoute(
        "POST",
        "/admin/check",
        check,
        "May this key spend N credits now? Both remainders: the team's (credits less holds) and "
        "the key's (cap less usage and holds; null without a cap), allowed or not (no write)",
        "checkCredits",
        CheckVerdict,
        body=schemas.CheckIn,
        errors=(404, 409),
    ),
]
