"""The gateway's request path: admit (auth, rate, concurrency, credits), forward, settle.

A database transaction is never held across the upstream call: the reservation commits before
forwarding, and the settlement is its own transaction after the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from creditgate.domain import pricing
from creditgate.domain.errors import ConcurrencyLimited
from creditgate.gateway.routes import Operation, classify
from creditgate.gateway.upstream import Answer, Upstream, UpstreamFailed, kept_headers
from creditgate.http.auth import admit, check_token, rate_limited
from creditgate.http.context import AppContext, blocking, context, quick_read
from creditgate.http.errors import HTTPError
from creditgate.http.responses import JSON, fail
from creditgate.services import account, jobs, reported, reservations
from creditgate.services.reservations import ReservationView, ReserveRequest

log = logging.getLogger("creditgate.gateway")

SYNC_TTL_MS = 15 * 60 * 1000
ASYNC_TTL_MS = 24 * 60 * 60 * 1000
MAX_BODY = 10 << 20


async def handle(request: Request) -> Response:
    ctx = context(request)
    upstream: Upstream | None = ctx.upstream
    if upstream is None:
        raise HTTPError(404, "Not Found")
    op = classify(request.method, request.url.path)
    token = check_token(request)
    now = ctx.clock()
    snap = admit(await quick_read(ctx.db, account.snapshot, ctx.db, token, now))
    if op.kind == "passthrough" and request.method != "POST":
        return await _passthrough(ctx, upstream, request, snap)
    if op.kind == "active":
        running = await blocking(jobs.active_crawls, ctx.db, snap.team.id)
        return JSON(
            {
                "success": True,
                "crawls": [
                    {"id": job_id, "teamId": snap.team.id, "url": url, "options": {}}
                    for job_id, url in running
                ],
            }
        )
    body = await _bounded_body(request)
    if op.kind in ("status", "cancel", "owned"):
        return await _job_route(ctx, upstream, request, op, snap, body)
    limit = snap.plan.crawl_rpm if op.mode == "crawl" else snap.plan.scrape_rpm
    decision = await ctx.limiter.hit(snap.team.id, op.mode, limit, now)
    if not decision.allowed:
        raise rate_limited(decision, now)
    return await _metered(ctx, upstream, request, op, snap, body)


async def _bounded_body(request: Request) -> bytes:
    """A metered request's body, read whole: its cost is estimated from it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPError(413, f"Request body is too large (limit {MAX_BODY} bytes).")
    return bytes(body)


async def _passthrough(
    ctx: AppContext, upstream: Upstream, request: Request, snap: account.Snapshot
) -> Response:
    """Routes creditgate does not meter up front: bodies stream both ways; a GET whose answer
    reports credits is charged the increase of that running total for its path."""
    try:
        response = await upstream.open(
            request.method,
            request.url.path,
            request.url.query,
            dict(request.headers),
            request.stream(),
        )
    except UpstreamFailed as exc:
        return fail(exc.status, exc.error)
    if request.method == "GET" and response.status_code < 300:
        tee = _ReportedTotal(ctx, snap, request.url.path)
        return StreamingResponse(
            tee.relay(response), status_code=response.status_code, headers=kept_headers(response)
        )
    return StreamingResponse(
        response.aiter_bytes(),
        status_code=response.status_code,
        headers=kept_headers(response),
        background=BackgroundTask(response.aclose),
    )


async def _metered(
    ctx: AppContext,
    upstream: Upstream,
    request: Request,
    op: Operation,
    snap: account.Snapshot,
    body: bytes,
) -> Response:
    """Reserve the estimate, forward, then settle what the upstream reports (or release)."""
    parsed = _json_object(body)
    cost = pricing.estimate(op.endpoint, parsed) if op.endpoint else 1
    if op.endpoint in ("crawl", "batch_scrape"):
        parsed, cost = await _fit_limit(ctx, snap, op, parsed, cost)
        body = orjson.dumps(parsed)
    target = parsed.get("url") or parsed.get("query")
    held = await _reserve(ctx, snap, op, cost, target if isinstance(target, str) else None)
    try:
        response = await upstream.open(
            request.method, request.url.path, request.url.query, dict(request.headers), body
        )
    except UpstreamFailed as exc:
        await blocking(reservations.release, ctx.db, held.id, ctx.clock())
        return fail(exc.status, exc.error)
    if response.status_code >= 400:  # refused by the upstream: costs nothing
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        await blocking(reservations.release, ctx.db, held.id, ctx.clock())
        return Response(content, status_code=response.status_code, headers=kept_headers(response))
    if op.kind == "async":
        return await _job_started(ctx, request, op, snap, held, response)
    settle = _Settlement(ctx, op, parsed, held.id)
    return StreamingResponse(
        settle.relay(response), status_code=response.status_code, headers=kept_headers(response)
    )


async def _job_started(
    ctx: AppContext,
    request: Request,
    op: Operation,
    snap: account.Snapshot,
    held: ReservationView,
    response: httpx.Response,
) -> Response:
    """An async job's start: record it to follow, point its status link at the gateway."""
    try:
        content = await response.aread()
    finally:
        await response.aclose()
    payload = Answer(response.status_code, {}, content).json()
    if not (isinstance(payload, dict) and isinstance(payload.get("id"), str)):
        await blocking(reservations.release, ctx.db, held.id, ctx.clock())
        return Response(content, status_code=response.status_code, headers=kept_headers(response))
    job_id = payload["id"]
    await blocking(
        jobs.open_job,
        ctx.db,
        job_id,
        snap.team.id,
        held.id,
        snap.key.id,
        op.endpoint,
        op.status_path(job_id),
        ctx.clock(),
    )
    if isinstance(payload.get("url"), str):
        payload["url"] = str(request.base_url).rstrip("/") + op.status_path(job_id)
    return JSON(payload, status_code=response.status_code)


class _Tee:
    """Streams an answer to the client while keeping a copy, and acts on the copy at the end.

    The last chunk is held back until `_complete` has run, so a client that has read the whole
    answer finds its effect in the ledger. If the client goes away first, the rest of the
    answer is still read and acted on, in a task of its own.
    """

    MAX_COPY = 32 << 20  # past this the copy is dropped and treated as saying nothing
    _pending: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.copy: bytearray | None = bytearray()
        self.done = False
        self._chunks: AsyncIterator[bytes] | None = None  # one iterator, resumed if need be

    def _keep(self, chunk: bytes) -> None:
        if self.copy is not None:
            self.copy += chunk
            if len(self.copy) > self.MAX_COPY:
                self.copy = None

    def payload(self) -> object:
        return None if self.copy is None else Answer(200, {}, bytes(self.copy)).json()

    async def relay(self, response: httpx.Response) -> AsyncIterator[bytes]:
        held_back: bytes | None = None
        finished = False
        self._chunks = response.aiter_bytes()
        try:
            async for chunk in self._chunks:
                self._keep(chunk)
                if held_back is not None:
                    yield held_back
                held_back = chunk
            finished = True
            await self._complete()
            self.done = True
            if held_back is not None:
                yield held_back
        finally:
            if not self.done:
                task = asyncio.create_task(self._finish(response, finished))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                await response.aclose()

    async def _finish(self, response: httpx.Response, finished: bool) -> None:
        try:
            if not finished and self._chunks is not None:
                async for chunk in self._chunks:
                    self._keep(chunk)
            await self._complete()
        except Exception:
            log.warning("an abandoned answer could not be read to its end", exc_info=True)
            await self._abandoned()
        finally:
            await response.aclose()

    async def _complete(self) -> None:
        raise NotImplementedError

    async def _abandoned(self) -> None:
        """The answer never completed."""


class _Settlement(_Tee):
    """A metered answer: settle its reservation with what it reports (or the cost table)."""

    def __init__(
        self, ctx: AppContext, op: Operation, parsed: dict[str, Any], reservation_id: str
    ) -> None:
        super().__init__(ctx)
        self.op, self.parsed, self.reservation_id = op, parsed, reservation_id

    async def _complete(self) -> None:
        payload = self.payload()
        credits = pricing.reported_cost(payload)
        if credits is None:
            credits = _fallback_cost(self.op, self.parsed, payload)
        await blocking(
            reservations.settle,
            self.ctx.db,
            self.reservation_id,
            credits,
            self.ctx.clock(),
            final=True,
        )

    async def _abandoned(self) -> None:  # the work did not complete: it is not charged
        await blocking(reservations.release, self.ctx.db, self.reservation_id, self.ctx.clock())


class _ReportedTotal(_Tee):
    """An unknown GET: what its answer reports is a running total for its path; the increase
    since the last answer for that path is charged."""

    def __init__(self, ctx: AppContext, snap: account.Snapshot, path: str) -> None:
        super().__init__(ctx)
        self.snap, self.path = snap, path

    async def _complete(self) -> None:
        total = pricing.reported_cost(self.payload())
        if total is not None:
            await blocking(
                reported.charge_reported_total,
                self.ctx.db,
                self.snap.key.id,
                self.snap.team.id,
                self.path,
                total,
                self.ctx.clock(),
            )


async def _fit_limit(
    ctx: AppContext, snap: account.Snapshot, op: Operation, parsed: dict[str, Any], cost: int
) -> tuple[dict[str, Any], int]:
    """Lower a crawl's limit to what the team can pay for, as the live API does."""
    per_page = pricing.scrape_cost(parsed)
    verdict = await blocking(reservations.check, ctx.db, snap.key.id, cost, ctx.clock())
    if verdict.allowed or verdict.remaining < per_page or op.endpoint != "crawl":
        return parsed, cost
    pages = verdict.remaining // per_page
    return {**parsed, "limit": pages}, pages * per_page


async def _reserve(
    ctx: AppContext, snap: account.Snapshot, op: Operation, cost: int, target: str | None
) -> ReservationView:
    """Hold credits; while the team runs its plan's concurrency, wait in a bounded queue."""
    request = ReserveRequest(
        key=snap.key.id,
        credits=max(cost, 1),
        endpoint=op.endpoint or None,
        api_version=op.version,
        target=target,
        ttl_ms=ASYNC_TTL_MS if op.kind == "async" else SYNC_TTL_MS,
    )
    queued = False
    deadline = time.monotonic() + ctx.queue_wait_seconds
    try:
        while True:
            try:
                return await blocking(
                    reservations.reserve,
                    ctx.db,
                    request,
                    ctx.clock(),
                    max_open=snap.plan.concurrency,
                )
            except ConcurrencyLimited:
                if not queued:
                    queued = await ctx.limiter.enter_queue(
                        snap.team.id, max(snap.plan.concurrency, 1)
                    )
                    if not queued:
                        raise
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.05)
    finally:
        if queued:
            await ctx.limiter.leave_queue(snap.team.id)


async def _job_route(
    ctx: AppContext,
    upstream: Upstream,
    request: Request,
    op: Operation,
    snap: account.Snapshot,
    body: bytes,
) -> Response:
    """Status, cancel and errors of a job: only its own team may see it; status settles it."""
    job = await blocking(jobs.get_job, ctx.db, op.job_id or "")
    if job is None or job.team_id != snap.team.id:
        raise HTTPError(404, "Job not found")
    try:
        answer = await _send(upstream, request, body)
    except UpstreamFailed as exc:
        return fail(exc.status, exc.error)
    if op.kind == "cancel" and answer.status < 300:
        await follow(ctx, upstream, job)  # settle what was done before the cancel
    if op.kind != "status" or answer.status >= 300:
        return _reply(answer)
    payload = answer.json()
    if isinstance(payload, dict):
        await _apply(ctx, job, payload)
        _rewrite_links(payload, upstream.base_url, str(request.base_url).rstrip("/"))
        return JSON(payload, status_code=answer.status)
    return _reply(answer)


async def follow(ctx: AppContext, upstream: Upstream, job: jobs.Job) -> None:
    """Poll one job's status upstream and settle what it reports."""
    try:
        answer = await upstream.send("GET", job.status_path, "", {}, b"")
    except UpstreamFailed as exc:
        log.warning("job %s: status poll failed: %s", job.id, exc.error)
        return
    payload = answer.json()
    if answer.status < 300 and isinstance(payload, dict):
        await _apply(ctx, job, payload)
    elif answer.status == 404:  # the upstream forgot the job: settle what we know, close it
        await blocking(jobs.apply_report, ctx.db, job, None, "failed", ctx.clock())


async def _apply(ctx: AppContext, job: jobs.Job, payload: dict[str, Any]) -> None:
    used = pricing.reported_job_cost(payload)
    status = payload.get("status")
    await blocking(
        jobs.apply_report,
        ctx.db,
        job,
        used,
        status if isinstance(status, str) else None,
        ctx.clock(),
    )


def _rewrite_links(payload: dict[str, Any], upstream_base: str, own_base: str) -> None:
    """Pagination and status links must point back at the gateway, not the upstream."""
    for field in ("next", "url"):
        value = payload.get(field)
        if isinstance(value, str) and value.startswith(upstream_base):
            payload[field] = own_base + value[len(upstream_base) :]


def _fallback_cost(op: Operation, parsed: dict[str, Any], payload: object) -> int:
    """The cost table, for answers that report no credits (spec §3)."""
    if op.endpoint == "map":
        return 1
    if op.endpoint == "scrape":
        return pricing.scrape_cost(parsed)
    if op.endpoint == "search" and isinstance(payload, dict):
        data = payload.get("data")
        results = data.get("web") if isinstance(data, dict) else data
        count = len(results) if isinstance(results, list) else 0
        return -(-count // 10) * 2
    return 0


async def _send(upstream: Upstream, request: Request, body: bytes) -> Answer:
    return await upstream.send(
        request.method, request.url.path, request.url.query, dict(request.headers), body
    )


def _reply(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
