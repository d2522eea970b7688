"""The ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import httpx
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from creditgate.dashboard import actions as dashboard_actions
from creditgate.dashboard import pages as dashboard
from creditgate.domain.errors import LedgerError
from creditgate.domain.ids import new_id
from creditgate.gateway import proxy
from creditgate.http import account, admin, openapi
from creditgate.http.hot import Gateway, HotReads
from creditgate.services import jobs, metrics, processes, queued, reservations, webhooks
from creditgate.services.leases import LeaseManager
from creditgate.services.writer import Writer
from creditgate.storage.database import (
    Database,
    free_disk_bytes,
    is_unavailable,
    unavailable_errors,
)
from creditgate.web import metrics as web_metrics
from creditgate.web.context import AppContext, blocking, bounded, context
from creditgate.web.edge import Edge
from creditgate.web.errors import (
    HTTPError,
    disk_full_lately,
    on_database_error,
    on_http_error,
    on_ledger_error,
    on_starlette_error,
    on_unexpected,
)
from creditgate.web.limits import RedisLimiter
from creditgate.web.middleware import AnswerUnexpected
from creditgate.web.requestlog import RequestLog
from creditgate.web.responses import fail, ok

log = logging.getLogger("creditgate.http")

READY_TIMEOUT_SECONDS = 2.0
# What only makes the process `degraded` must not slow the answer: a load balancer's check
# times out (haproxy's = its `inter` when `timeout check` is unset) and takes it out.
DEGRADED_TIMEOUT_SECONDS = 0.25
MIN_FREE_DISK_BYTES = 16 << 20  # SQLite: below this, no longer ready (writes will fail soon)


async def health(_request: Request) -> Response:
    """Liveness: the process answers (whatever the database does)."""
    return ok()


async def ready(request: Request) -> Response:
    """Readiness, meaning "send me traffic": 503 only for what this process cannot work
    without — the database (`SELECT 1` within READY_TIMEOUT_SECONDS) and room to write (a
    SQLite disk with less than MIN_FREE_DISK_BYTES free, or a write refused for a full disk in
    the last 30 s). Redis and the upstream are checked side by side too, but a process works on
    without them (limits per process; work answered 502/504 while the upstream is down, the
    account and admin API as ever) and every process shares them, so their loss only lists them
    as `degraded`. No URL, no error text, no team."""
    ctx = context(request)
    needed: dict[str, Callable[[], Awaitable[None]]] = {"database": partial(_ping_database, ctx)}
    optional: dict[str, Callable[[], Awaitable[None]]] = {}
    if isinstance(ctx.limiter, RedisLimiter):
        optional["redis"] = ctx.limiter.ping
    if ctx.upstream is not None:
        optional["upstream"] = partial(ctx.upstream.ping, DEGRADED_TIMEOUT_SECONDS)
    checks = {**needed, **optional}
    answered = await asyncio.gather(
        *(
            _answers(
                name, check, READY_TIMEOUT_SECONDS if name in needed else DEGRADED_TIMEOUT_SECONDS
            )
            for name, check in checks.items()
        )
    )
    down = {name for name, fine in zip(checks, answered, strict=True) if not fine}
    failed = [name for name in needed if name in down]
    if _disk_full(ctx):
        failed.append("disk")
    degraded = [name for name in optional if name in down]
    extra: dict[str, Any] = {"degraded": degraded} if degraded else {}
    if failed:
        return fail(503, f"Not ready: {', '.join(failed)} unavailable.", failed=failed, **extra)
    return ok(200, None, **extra)


def _disk_full(ctx: AppContext) -> bool:
    free = free_disk_bytes(ctx.db.url)
    return disk_full_lately(ctx) or (free is not None and free < MIN_FREE_DISK_BYTES)


async def _ping_database(ctx: AppContext) -> None:
    if ctx.db.call_seconds is not None:  # counted with the other calls if abandoned
        await bounded(ctx.db, ctx.db.ping)
    else:
        await anyio.to_thread.run_sync(ctx.db.ping, abandon_on_cancel=True)


async def _answers(name: str, check: Callable[[], Awaitable[None]], within: float) -> bool:
    try:
        with anyio.fail_after(within):
            await check()
    except Exception as exc:  # whatever keeps it from answering: not ready
        log.warning("not ready: %s did not answer (%s)", name, type(exc).__name__)
        return False
    return True


async def metrics_page(request: Request) -> Response:
    """Prometheus's text format: the counters of every worker (services/metrics.py) and the
    gauges read now. No token, and no team, key or path a client sent in any label."""
    ctx = context(request)
    body = await blocking(_exposition, ctx, ctx.db)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def _exposition(ctx: AppContext, _db: Database) -> bytes:
    """(`_db` names the database read, for blocking()'s deadline.)"""
    return generate_latest(metrics.registry_for_scrape(ctx.db, ctx.clock))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Background work: expired holds end on time without traffic; a gateway registers its
    process, releases the holds of dead ones, beats, and follows open upstream jobs."""
    ctx: AppContext = app.state.ctx
    ctx.writer = Writer(ctx.db)
    ctx.writer.start()
    tasks = []
    if ctx.upstream is not None:
        ctx.process_id = new_id(ctx.clock())
        await _join(ctx, ctx.process_id)
        tasks.append(asyncio.create_task(_heartbeat(ctx, ctx.process_id)))
        if ctx.use_leases and ctx.metering:
            ctx.leases = LeaseManager(ctx.write, ctx.clock, ctx.process_id)
            tasks.append(asyncio.create_task(ctx.leases.run()))
    if ctx.sweep_seconds > 0:
        tasks.append(asyncio.create_task(_sweep(ctx)))
    metrics.register_webhook_backlog(webhooks.pending)
    if ctx.webhook_seconds > 0:
        tasks.append(asyncio.create_task(_deliver_webhooks(ctx)))
    if ctx.upstream is not None and ctx.follow_seconds > 0:
        tasks.append(asyncio.create_task(_follow(ctx)))
    if ctx.key_use_seconds > 0:
        tasks.append(asyncio.create_task(_flush_key_uses(ctx)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ctx.leases is not None:  # leases given back before the writer closes
            with contextlib.suppress(Exception):
                await ctx.leases.close()
        with contextlib.suppress(Exception):  # the last round's uses, before the writer closes
            await blocking(ctx.key_uses.flush, ctx.db)
        if ctx.upstream is not None:
            await ctx.upstream.close()
        writer, ctx.writer = ctx.writer, None
        await blocking(writer.close)  # what is queued is written and answered first
        if ctx.process_id is not None:
            with contextlib.suppress(Exception):
                await blocking(processes.unregister, ctx.db, ctx.process_id)


async def _sweep(ctx: AppContext) -> None:
    while True:
        await asyncio.sleep(ctx.sweep_seconds)
        try:
            await blocking(reservations.expire_due, ctx.db, ctx.clock())
            if ctx.process_id is not None:
                await blocking(processes.release_orphans, ctx.db, ctx.clock())
        except Exception as exc:  # a sweep failing must not stop the next one
            _round_failed("reservation sweep", exc)


async def _flush_key_uses(ctx: AppContext) -> None:
    """Keys' last uses, written every key_use_seconds (services/keys.py: KeyUses)."""
    while True:
        await asyncio.sleep(ctx.key_use_seconds)
        try:
            await blocking(ctx.key_uses.flush, ctx.db)
        except Exception as exc:  # a round failing must not stop the next one
            _round_failed("key last-use round", exc)


async def _deliver_webhooks(ctx: AppContext) -> None:
    """Send what the outbox holds that is due (services/webhooks.py Dispatcher): a delivery
    that ends wakes the next round, so a receiver back after an outage gets its backlog at
    once, in order; a slow one holds only its own deliveries."""
    dispatcher = webhooks.Dispatcher(ctx.db, ctx.clock, ctx.webhook_seconds)
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await dispatcher.run(client)
            except Exception as exc:  # a round failing must not stop the next one
                _round_failed("webhook delivery", exc)
                await asyncio.sleep(ctx.webhook_seconds)


async def _join(ctx: AppContext, process_id: str) -> None:
    """Register this gateway process and release the holds dead ones left. A database that is
    down at start does not stop the server: the heartbeat registers it once it answers."""
    try:
        await blocking(processes.beat, ctx.db, process_id, ctx.clock())
        await blocking(processes.release_orphans, ctx.db, ctx.clock())
        await _count_processes(ctx)
    except Exception as exc:
        log.error("could not register this gateway process (retrying): %s", exc)


async def _count_processes(ctx: AppContext) -> None:
    """How many gateway processes are alive: while Redis fails, each limits to its share."""
    if isinstance(ctx.limiter, RedisLimiter):
        alive = await blocking(processes.live, ctx.db, ctx.clock())
        ctx.limiter.processes = max(len(alive), 1)


def _round_failed(what: str, exc: Exception) -> None:
    """A database outage fails every round: one line each, not a traceback every few seconds;
    anything else is a bug and gets its traceback."""
    if is_unavailable(exc):
        log.error("%s failed: the database is unavailable (%s)", what, type(exc).__name__)
    else:
        log.error("%s failed", what, exc_info=exc)


async def _heartbeat(ctx: AppContext, process_id: str) -> None:
    while True:
        await asyncio.sleep(processes.HEARTBEAT_MS / 1000)
        try:
            await blocking(processes.beat, ctx.db, process_id, ctx.clock())
            await _count_processes(ctx)
        except Exception as exc:
            log.error("heartbeat failed: %s", exc)


async def _follow(ctx: AppContext) -> None:
    """Follow open upstream jobs so they are settled even when no client polls them."""
    assert ctx.upstream is not None
    while True:
        await asyncio.sleep(ctx.follow_seconds)
        try:
            due = await blocking(jobs.claim_due, ctx.db, ctx.clock(), ctx.poll_ms)
            # Side by side: one slow job must not delay the polls (and the holds) of the rest.
            results = await asyncio.gather(
                *(proxy.follow(ctx, ctx.upstream, job) for job in due), return_exceptions=True
            )
            for failed in (r for r in results if isinstance(r, Exception)):
                log.error("following a job failed: %s", failed)
        except Exception as exc:  # one failed round must not stop the next
            _round_failed("job follower round", exc)
        try:
            await _start_queued(ctx)
        except Exception as exc:
            _round_failed("queued job starts round", exc)


STARTS_PER_TEAM = 20  # the most queued starts of one team one round starts


async def _start_queued(ctx: AppContext) -> None:
    """Queued job starts (services/queued.py): those a dead process left half-started are
    given up, the holds of those waiting renewed, and each team's oldest started while its
    slots allow — teams side by side, a team's starts one after another, in arrival order."""
    assert ctx.upstream is not None and ctx.process_id is not None
    now = ctx.clock()
    given_up = await blocking(
        queued.abandoned, ctx.db, partial(processes.live, ctx.db, now), now, ctx.page_grace_ms
    )
    for start in given_up:
        web_metrics.queued_start("failed")
        log.error("queued job start %s of team %s was abandoned mid-start", start.id, start.team_id)
    await blocking(queued.renew, ctx.db, now)
    teams = await blocking(queued.teams_waiting, ctx.db)
    results = await asyncio.gather(
        *(_start_team(ctx, team) for team in teams), return_exceptions=True
    )
    for failed in (r for r in results if isinstance(r, Exception)):
        log.error("starting a queued job failed: %s", failed)


async def _start_team(ctx: AppContext, team_id: str) -> None:
    assert ctx.upstream is not None and ctx.process_id is not None
    for _ in range(STARTS_PER_TEAM):
        claimed = await blocking(queued.claim_next, ctx.db, team_id, ctx.process_id, ctx.clock())
        if claimed is None:
            return
        if isinstance(claimed, queued.Claimed):
            await proxy.start_queued(ctx, ctx.upstream, claimed)
        else:
            web_metrics.queued_start("failed")
            log.warning("queued job start %s was not started: %s", claimed.id, claimed.error)


GATEWAY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(ctx: AppContext) -> Starlette:
    routes = [
        *account.routes(),
        *admin.routes(),
        *dashboard.routes(),
        *dashboard_actions.routes(),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/live", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        # Firecrawl's own health routes: creditgate's health, never forwarded (so before the
        # gateway's /v1 catch-all).
        Route("/v1/health/liveness", health, methods=["GET"]),
        Route("/v1/health/readiness", ready, methods=["GET"]),
    ]
    if ctx.upstream is not None:  # the rest of /v1 and /v2: the gateway's route table decides
        routes += [
            Route("/v1/{rest:path}", proxy.handle, methods=GATEWAY_METHODS),
            Route("/v2/{rest:path}", proxy.handle, methods=GATEWAY_METHODS),
        ]
    handlers = {
        LedgerError: on_ledger_error,
        HTTPError: on_http_error,
        HTTPException: on_starlette_error,
        **dict.fromkeys(unavailable_errors(), on_database_error),
        Exception: on_unexpected,
    }
    app = _App(
        routes=routes,
        # Outermost first: every answer, a 500 included, gets its CORS header at the edge.
        middleware=[
            Middleware(RequestLog),
            Middleware(Edge, origins=ctx.cors_origins),
            Middleware(AnswerUnexpected),
        ],
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    # No slash redirects: Starlette builds their Location from the Host header, which anyone
    # sets (`GET /v1` answered 307 to any host named). A path that is not a route is a 404.
    app.router.redirect_slashes = False
    app.state.ctx = ctx
    app.hot_routes, app.hot_handlers = account.hot_routes(), handlers
    app.hot_gateway = None if ctx.upstream is None else _gateway(routes)
    return app


def _gateway(routes: list[BaseRoute]) -> Gateway:
    """The gateway's catch-all, as http/hot.py takes it: every path under /v1/ and /v2/ but
    those the routes before it hold (matched exactly, so none of them may take parameters)."""
    taken = set()
    for route in routes:
        path = getattr(route, "path", "")
        if getattr(route, "endpoint", None) is proxy.handle or not path.startswith(
            ("/v1/", "/v2/")
        ):
            continue
        if "{" in path:
            raise ValueError(f"a route under the gateway's prefixes takes parameters: {path}")
        taken.add(path.encode())
    return Gateway(proxy.handle, frozenset(GATEWAY_METHODS), frozenset(taken))


class _App(Starlette):
    """Starlette, with the account routes' reads answered before anything else (http/hot.py):
    outside even Starlette's own error middleware, since HotReads answers its failures with the
    same handlers."""

    hot_routes: dict[str, Any]
    hot_handlers: dict[Any, Any]
    hot_gateway: Gateway | None

    def build_middleware_stack(self) -> ASGIApp:
        origins: tuple[str, ...] = self.state.ctx.cors_origins
        stack = super().build_middleware_stack()
        return HotReads(stack, self.hot_routes, self.hot_handlers, origins, self.hot_gateway)
