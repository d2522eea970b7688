"""Reservations: hold credits for work of unknown cost, read, settle, release."""

from __future__ import annotations

from creditgate.http import schemas
from creditgate.http.admin.route import (
    NAMED,
    REPLAYABLE,
    AdminRoute,
    Call,
    Reply,
    created,
    replay_headers,
)
from creditgate.services import reservations
from creditgate.services.ledger import check_idempotency_key
from creditgate.services.wire import Reservation
from creditgate.web.context import blocking

HOLD = "/admin/reservations/{reservation_id}"


async def reserve(call: Call) -> Reply:
    body = call.parsed(schemas.ReserveIn)
    hold = reservations.ReserveRequest(
        key=body.key_ref(),
        credits=body.credits,
        ttl_ms=body.ttlSeconds * 1000,
        endpoint=body.endpoint,
        api_version=body.apiVersion,
        job_id=body.jobId,
        target=body.target,
        idempotency_key=body.idempotencyKey,
    )
    view: reservations.ReservationView = await call.ctx.write(
        reservations.Reserve(hold, call.ctx.clock())
    )
    return created(Reservation.of(view), view.replayed)


async def settle(call: Call) -> Reply:
    body = call.parsed(schemas.SettleIn)
    settlement = reservations.Settle(
        call.path("reservation_id"),
        body.credits,
        call.ctx.clock(),
        final=body.final,
        idempotency_key=body.idempotencyKey,
    )
    view: reservations.ReservationView = await call.ctx.write(settlement)
    return Reply(Reservation.of(view), headers=replay_headers(view.replayed))


async def release(call: Call) -> Reply:
    check_idempotency_key(call.parsed(schemas.ReleaseIn).idempotencyKey)
    op = reservations.Release(call.path("reservation_id"), call.ctx.clock(), None)
    view: reservations.ReservationView = await call.ctx.write(op)
    return Reply(Reservation.of(view))


async def get_reservation(call: Call) -> Reply:
    view = await blocking(
        reservations.get, call.ctx.db, call.path("reservation_id"), call.ctx.clock()
    )
    return Reply(Reservation.of(view))


ROUTES = [
    AdminRoute(
        "POST",
        "/admin/reservations",
        reserve,
        "Hold credits for work of unknown cost",
        "reserveCredits",
        Reservation,
        body=schemas.ReserveIn,
        status=REPLAYABLE,
        errors=(402, 404, 409, 429),
    ),
    AdminRoute(
        "GET",
        HOLD,
        get_reservation,
        "Read a reservation",
        "getReservation",
        Reservation,
        errors=NAMED,
    ),
    AdminRoute(
        "POST",
        f"{HOLD}/settle",
        settle,
        "Charge what the work cost (partial, repeatable; final closes)",
        "settleReservation",
        Reservation,
        body=schemas.SettleIn,
        errors=(404, 409),
    ),
    AdminRoute(
        "POST",
        f"{HOLD}/release",
        release,
        "Release a reservation without charging",
        "releaseReservation",
        Reservation,
        body=schemas.ReleaseIn,
        body_optional=True,
        errors=NAMED,
    ),
]
