"""The gateway's request path: match a row of the route table, admit, forward, settle.

Deny by default: a request is forwarded only when its canonical path (web/edge.py) is a row
of the route table, to the path built from that row; anything else is a 404 that never leaves.
Admission runs in this order: the key (401/403), the plan's requests per minute (429), a valid
body (400), the concurrency queue and the credit hold (429/402). Concurrency is counted in
pages in flight: a crawl is forwarded with the slots it holds as its `maxConcurrency`
(domain/concurrency.py). A database transaction is never held across the upstream call: the
hold commits before forwarding, and the settlement is its own transaction after the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from creditgate.domain import cancels, concurrency, crawl_forms, holds, pricing, requests
from creditgate.domain import queued as queued_answers
from creditgate.domain.errors import ConcurrencyLimited, Conflict
from creditgate.domain.holds import HoldPlan
from creditgate.domain.instants import format_iso
from creditgate.domain.routes import JOB_ID, Match, RouteKind, RouteRow
from creditgate.gateway import discovery
from creditgate.services import account, jobs, queued, reservations
from creditgate.services.reservations import ReservationView, ReserveRequest
from creditgate.web import metrics
from creditgate.web.auth import admit, check_token, limit_key, rate_limited
from creditgate.web.context import AppContext, context, quick_read
from creditgate.web.errors import HTTPError
from creditgate.web.fairshare import Busy
from creditgate.web.metrics import UNMATCHED, Outcome, UpstreamError
from creditgate.web.requestlog import RequestFields, fields
from creditgate.web.responses import JSON, Relay, fail
from creditgate.web.upstream import (
    Answer,
    ReadFailed,
    Upstream,
    UpstreamFailed,
    failure,
    kept_headers,
    outgoing_headers,
)
from creditgate.web.upstream import Response as UpstreamResponse

log = logging.getLogger("creditgate.gateway")

SYNC_TTL_MS = 15 * 60 * 1000
ASYNC_TTL_MS = jobs.JOB_HOLD_MS  # renewed while the job is followed
MAX_BODY = 10 << 20
BODY_TIMEOUT_S = 30.0  # a client that has not sent its body by then is cut off (408)
NOT_FOUND = "Not Found"
JOB_NOT_FOUND = "Job not found"
STATUS_RPM_FACTOR = 5  # job reads and cancels a minute: this many times the plan's scrape rate,
STATUS_RPM_MIN = 300  # and never fewer: an SDK polls each job every 1-2 s (Firecrawl: 25,000)
READS_BUSY = (
    "Too many job status reads in flight for your team ({} at once per gateway process); "
    "please retry after 1s."
)
POLL_TIMEOUT_S = 10.0  # a status poll of the follower; a slow upstream must not stall the rest


async def handle(request: Request) -> Response:
    ctx = context(request)
    upstream = ctx.upstream
    match = ctx.routes.match(request.method, request.scope["path"])
    logged = fields(request)
    logged.route = UNMATCHED if match is None else match.row.path  # never the path sent
    if upstream is None or match is None or match.row.kind in (RouteKind.ACCOUNT, RouteKind.HEALTH):
        raise HTTPError(404, NOT_FOUND)
    token = check_token(request)
    now = ctx.clock()
    snap = admit(await quick_read(ctx.db, account.snapshot, ctx.db, token, now), now)
    logged.team, logged.key = snap.team.id, snap.key.hint
    ctx.key_uses.record(snap.key.id, now)
    body = await _bounded_body(request)
    kind = match.row.kind
    if kind is RouteKind.LIST:
        return await _list(ctx, snap)
    if kind in (RouteKind.JOB_READ, RouteKind.JOB_CANCEL):
        # Firecrawl limits status reads apart from the work, and more generously. Cancels have
        # a window of their own: a client that polled too fast can still stop its crawl.
        status_rpm = max(STATUS_RPM_FACTOR * snap.plan.scrape_rpm, STATUS_RPM_MIN)
        window = "status" if kind is RouteKind.JOB_READ else "cancel"
        decision = await ctx.limiter.hit(snap.team.id, window, status_rpm, now)
        if not decision.allowed:
            raise rate_limited(decision, now)
        # At most the team's share of reads in flight in this process: a slow upstream for its
        # reads slows only its own (web/fairshare.py).
        reads = ctx.shares.reads
        try:
            await reads.acquire(snap.team.id, ctx.shares.reads_wait_seconds)
        except Busy:
            logged.outcome = Outcome.RATE_LIMITED
            busy = READS_BUSY.format(reads.size)
            raise HTTPError(429, busy, headers={"Retry-After": "1"}) from None
        try:
            return await _job_route(ctx, upstream, request, match, snap)
        finally:
            reads.release(snap.team.id)
    if not ctx.metering:  # the proxy alone, as a baseline for what metering costs (bench/)
        return await _free(upstream, request, match.row, body, snap.team.id)
    await limit_key(ctx.limiter, snap.key, now)
    limit = snap.plan.crawl_rpm if match.row.mode == "crawl" else snap.plan.scrape_rpm
    decision = await ctx.limiter.hit(snap.team.id, match.row.mode, limit, now)
    if not decision.allowed:
        raise rate_limited(decision, now)
    if kind is RouteKind.FREE:
        return await _free(upstream, request, match.row, body, snap.team.id)
    return await _metered(ctx, upstream, request, match.row, snap, body)


async def _bounded_body(request: Request) -> bytes:
    """The request's body, bounded in size (413) and in the time the client takes (408)."""
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    raise HTTPError(413, f"Request body is too large (limit {MAX_BODY} bytes).")
    except TimeoutError as exc:
        raise HTTPError(408, "Request Timeout: the body did not arrive in time.") from exc
    return bytes(body)


def _forwarded(request: Request) -> dict[str, str]:
    client = request.scope.get("client")
    return outgoing_headers(dict(request.headers), client[0] if client else None)


def _query(request: Request) -> str:
    return bytes(request.scope.get("query_string", b"")).decode("latin-1")


def public_base(ctx: AppContext, request: Request) -> str:
    """Where clients reach this gateway: the configured public URL, else the listen address
    (never the client's Host header, which anyone can set)."""
    if ctx.public_url:
        return ctx.public_url.rstrip("/")
    host, port = request.scope.get("server") or ("127.0.0.1", 80)
    host = f"[{host}]" if ":" in host else host
    return f"{request.scope.get('scheme', 'http')}://{host}:{port}"


async def _list(ctx: AppContext, snap: account.Snapshot) -> Response:
    """The team's running crawls, from creditgate's records: the upstream lists every team's."""
    running = await ctx.team_blocking(snap.team.id, jobs.active_crawls, ctx.db, snap.team.id)
    running += await ctx.team_blocking(
        snap.team.id, queued.queued_crawls, ctx.db, snap.team.id
    )  # accepted, waiting
    crawls: list[dict[str, object]] = [
        {"id": job_id, "teamId": snap.team.id, "url": url, "options": {}} for job_id, url in running
    ]
    return JSON({"success": True, "crawls": crawls})


async def _free(
    upstream: Upstream, request: Request, row: RouteRow, body: bytes, team: str
) -> Response:
    try:
        response = await upstream.open(
            row.method, row.upstream_path(None), "", _forwarded(request), body, team=team
        )
    except UpstreamFailed as exc:
        fields(request).outcome = Outcome.UPSTREAM_FAILED
        return fail(exc.status, exc.error)
    if response.status_code >= 400:
        fields(request).outcome = Outcome.UPSTREAM
    return Relay(_passed(response), response.status_code, kept_headers(response))


async def _passed(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """An answer's chunks as they come; its connection back to the pool at the end."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    finally:
        await response.aclose()


async def _metered(
    ctx: AppContext,
    upstream: Upstream,
    request: Request,
    row: RouteRow,
    snap: account.Snapshot,
    body: bytes,
) -> Response:
    """Validate, hold, forward, then settle what the upstream reports (or release)."""
    parsed = _parse(body)
    issues = requests.problems(row.endpoint, parsed)
    if issues:
        raise HTTPError(400, "Bad Request", code="BAD_REQUEST", details=issues)
    assert isinstance(parsed, dict)
    parsed, plan = await _plan(ctx, snap, row, parsed)
    target = parsed.get("url") or parsed.get("query") or parsed.get("prompt")
    logged = fields(request)
    target = target if isinstance(target, str) else None
    slots = concurrency.wanted_slots(row.endpoint, parsed, snap.plan.concurrency)
    v2_crawl = row.endpoint == "crawl" and row.version == "v2"
    if v2_crawl:  # one with no form this upstream can hold to its slots: refused before a hold
        await _v2_crawl_form(upstream, row.path, parsed, body)
    if row.kind is RouteKind.JOB_START:
        started = await _hold_job(ctx, request, row, snap, parsed, plan, slots, target)
        if isinstance(started, Response):  # queued: accepted, started when slots free
            return started
        held = started
    else:
        wait_ms = queued_answers.wait_bound_ms(
            row.endpoint, parsed, int(ctx.queue_wait_seconds * 1000)
        )
        held = await _reserve(ctx, snap, row, plan.first, slots, target, logged, wait_ms)
    logged.held = held.credits
    capped = concurrency.forwarded_body(row.endpoint, parsed, held.slots)
    if capped is not None:  # the upstream runs no more of its pages at once than it holds
        parsed, body = capped, orjson.dumps(capped)
    release = _releaser(ctx, snap.team.id, held.id)
    path = row.upstream_path(None)
    if v2_crawl:
        try:
            path, body = await _v2_crawl_form(upstream, path, parsed, body)
        except HTTPError:
            await release()
            raise
    try:
        response = await upstream.open(
            row.method, path, "", _forwarded(request), body, team=snap.team.id
        )
    except UpstreamFailed as exc:
        await (_release_later(ctx, release) if exc.may_still_run else release())
        logged.outcome = Outcome.UPSTREAM_FAILED
        return fail(exc.status, exc.error)
    except Exception:  # a failure no client error names (a bug): the hold is not kept for it
        await _release_later(ctx, release)
        raise
    if response.status_code >= 300:  # refused or failed upstream: passed on, costs nothing
        answer = await _read(response, release)
        if isinstance(answer, Response):
            logged.outcome = Outcome.UPSTREAM_FAILED
            return answer
        await release()
        logged.outcome = Outcome.UPSTREAM
        return Response(answer.body, status_code=answer.status, headers=answer.headers)
    if row.kind is RouteKind.JOB_START:
        return await _job_started(ctx, request, row, snap, held, plan, parsed, response)
    settle = _Settlement(ctx, row, parsed, plan.ceiling, snap.team.id, held.id, fields(request))
    return Relay(settle.relay(response), response.status_code, kept_headers(response))


async def _v2_crawl_form(
    upstream: Upstream, path: str, parsed: dict[str, Any], body: bytes
) -> tuple[str, bytes]:
    """Where and how a v2 crawl is started: as it came, or, on a build whose v2 crawl cannot
    take `maxConcurrency` (gateway/discovery.py), as the v1 crawl it is the same as
    (domain/crawl_forms.py). A crawl with no such form is refused there: forwarded, its pages
    would run beyond the team's slots."""
    if await discovery.v2_crawl_takes_concurrency(upstream) is not False:
        return path, body
    form = crawl_forms.as_v1_crawl(parsed)
    if isinstance(form, crawl_forms.NoV1Form):
        if form.invalid:  # the upstream's own 400 says what is wrong with it
            return path, body
        raise HTTPError(
            400,
            f"This Firecrawl build's v2 crawl cannot limit its pages in flight, and "
            f"{form.reason} has no v1 form to start it with. Use /v1/crawl, or run a "
            f"Firecrawl release newer than 2025-08.",
            code="BAD_REQUEST",
        )
    return "/v1/crawl", orjson.dumps(form)


async def _plan(
    ctx: AppContext, snap: account.Snapshot, row: RouteRow, parsed: dict[str, Any]
) -> tuple[dict[str, Any], HoldPlan]:
    """The hold of a request (domain/holds.py); a crawl's limit fitted to what the key can
    spend now."""
    spendable = None
    if row.kind is RouteKind.JOB_START and row.endpoint == "crawl":
        wanted = pricing.estimate(ctx.prices, row.endpoint, parsed)
        verdict = await ctx.team_blocking(
            snap.team.id, reservations.check, ctx.db, snap.key.id, wanted, ctx.clock()
        )
        spendable = None if verdict.allowed else verdict.remaining
    return holds.plan_hold(
        ctx.prices,
        row.endpoint,
        parsed,
        job=row.kind is RouteKind.JOB_START,
        concurrency=snap.plan.concurrency,
        spendable=spendable,
    )


Release = Callable[[], Awaitable[None]]
_LINGERING: set[asyncio.Task[None]] = set()


def _releaser(ctx: AppContext, team_id: str, reservation_id: str) -> Release:
    async def release() -> None:
        if ctx.leases is not None and ctx.leases.drop(reservation_id):
            return  # admitted on a credit lease: its estimate and slot back, in memory
        await ctx.write(reservations.Release(reservation_id, ctx.clock(), team_id), team_id)

    return release


async def _release_later(ctx: AppContext, release: Release) -> None:
    """The upstream stopped answering but may still be scraping the pages (a timeout, a
    dropped connection): the hold, with its page slots, stays the page grace, then is
    released. Nothing is charged. (If this process dies meanwhile, its holds are released
    as orphans.)"""

    async def later() -> None:
        await asyncio.sleep(ctx.page_grace_seconds)
        try:
            await release()
        except Exception:  # the database is down: the hold lapses at its time-to-live instead
            log.warning("a hold could not be released after the page grace", exc_info=True)

    task = asyncio.create_task(later())
    _LINGERING.add(task)
    task.add_done_callback(_LINGERING.discard)


async def _read(response: UpstreamResponse, on_failure: Release) -> Answer | Response:
    """The whole answer, or (after `on_failure`) creditgate's 502/504 if it never arrives."""
    try:
        content = await response.aread()
    except ReadFailed as exc:
        await on_failure()
        failed = failure(exc)
        return fail(failed.status, failed.error)
    finally:
        await response.aclose()
    return Answer(response.status_code, kept_headers(response), content)


async def _job_started(
    ctx: AppContext,
    request: Request,
    row: RouteRow,
    snap: account.Snapshot,
    held: ReservationView,
    plan: HoldPlan,
    parsed: dict[str, Any],
    response: UpstreamResponse,
) -> Response:
    """An async job's start: record it as the team's, to follow; its status link points at
    the gateway."""
    release = _releaser(ctx, snap.team.id, held.id)
    # A start whose answer broke off may have started the job: its slots stay the grace.
    answer = await _read(response, lambda: _release_later(ctx, release))
    if isinstance(answer, Response):
        fields(request).outcome = Outcome.UPSTREAM_FAILED
        return answer
    payload = answer.json()
    job_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        await release()
        return Response(answer.body, status_code=answer.status, headers=answer.headers)
    cancel = ctx.routes.match("DELETE", row.status_path(job_id))
    new = jobs.NewJob(
        id=job_id,
        team_id=snap.team.id,
        reservation_id=held.id,
        key_id=snap.key.id,
        endpoint=row.endpoint,
        status_path=row.status_path(job_id),
        cancel_path=None if cancel is None else row.status_path(job_id),
        hold_step=plan.step,
        hold_ceiling=plan.ceiling,
        page_price=plan.page_price,
        page_limit=plan.page_limit,
        page_timeout_ms=cancels.page_timeout_ms(row.endpoint, parsed),
    )
    try:
        await ctx.team_blocking(snap.team.id, jobs.open_job, ctx.db, new, ctx.clock(), ctx.poll_ms)
    except Conflict:  # the upstream answered with a job already followed: never settle it twice
        log.error("job start answered with %s, a job already followed; not charged here", job_id)
        await _release_later(ctx, release)
        fields(request).outcome = Outcome.UPSTREAM_FAILED
        return fail(502, "The upstream answered with a job that is already followed.")
    if isinstance(payload.get("url"), str):
        payload["url"] = public_base(ctx, request) + row.status_path(job_id)
    return JSON(payload, status_code=answer.status)


class _Tee:
    """Streams an answer to the client while keeping a copy, and acts on the copy at the end.

    The last chunk is held back until `_complete` has run, so a client that has read the whole
    answer finds its effect in the ledger. If the client goes away first, the rest of the
    answer is still read and acted on, in a task of its own. If the upstream breaks off its
    answer, the work is not taken as done (`_abandoned`) and the client's connection is cut,
    so it cannot take a truncated answer for a whole one.
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

    async def relay(self, response: UpstreamResponse) -> AsyncIterator[bytes]:
        held_back: bytes | None = None
        self._chunks = response.aiter_bytes()
        try:
            try:
                async for chunk in self._chunks:
                    self._keep(chunk)
                    if held_back is not None:
                        yield held_back
                    held_back = chunk
            except ReadFailed:
                log.warning("the upstream broke off its answer; nothing is charged for it")
                metrics.upstream_failed(UpstreamError.DROPPED)
                self.done = True
                await self._abandoned()
                raise
            await self._complete()
            self.done = True
            if held_back is not None:
                yield held_back
        finally:
            if not self.done:
                task = asyncio.create_task(self._finish(response))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                await response.aclose()

    async def _finish(self, response: UpstreamResponse) -> None:
        try:
            if self._chunks is not None:
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
    """A metered answer: settle its hold with what it reports (capped at the most the request
    could cost), or by the price table's rule where it reports nothing."""

    def __init__(
        self,
        ctx: AppContext,
        row: RouteRow,
        parsed: dict[str, Any],
        ceiling: int,
        team_id: str,
        reservation_id: str,
        logged: RequestFields,
    ) -> None:
        super().__init__(ctx)
        self.row, self.parsed, self.ceiling = row, parsed, ceiling
        self.team_id, self.reservation_id = team_id, reservation_id
        self.logged = logged

    async def _complete(self) -> None:
        payload = self.payload()
        endpoint, prices = self.row.endpoint, self.ctx.prices
        credits = _reported(payload, pricing.reported_cost)
        if credits is None:
            credits = pricing.figureless_cost(prices, endpoint, self.parsed, payload)
        most = self.ceiling + pricing.pdf_allowance(prices, endpoint, self.parsed, payload)
        if credits > most:
            _note_capped(endpoint, None, credits, most)
            credits = most
        leases = self.ctx.leases
        if leases is not None and leases.holds(self.reservation_id):  # one batched write
            await leases.draw(self.reservation_id, credits, _scrape_id(payload))
            self.logged.charged = credits
            return
        settle = reservations.Settle(
            self.reservation_id,
            credits,
            self.ctx.clock(),
            final=True,
            job_id=_scrape_id(payload),
            team_id=self.team_id,
        )
        try:
            await self.ctx.write(settle, self.team_id)
            self.logged.charged = credits
        except Conflict:  # released meanwhile: this process was taken for dead
            log.error("hold %s was closed before its answer settled", self.reservation_id)

    async def _abandoned(self) -> None:  # the work did not complete: it is not charged
        self.logged.outcome = Outcome.UPSTREAM_FAILED
        if self.ctx.leases is not None and self.ctx.leases.drop(self.reservation_id):
            return
        release = reservations.Release(self.reservation_id, self.ctx.clock(), self.team_id)
        await self.ctx.write(release, self.team_id)


def _reported(payload: Any, read: Callable[[Any], int | None]) -> int | None:
    """A reported figure, or None (logged) when the upstream reports one that is no count."""
    try:
        value = read(payload)
    except pricing.Unbelievable as exc:
        log.warning("the upstream reported an unbelievable cost; using the cost table: %s", exc)
        return None
    return value


_CAPPED_JOBS: set[str] = set()  # jobs whose capped figure this process has logged
_CAPPED_JOBS_MAX = 10_000


def _note_capped(endpoint: str, job_id: str | None, reported: int, most: int) -> None:
    """A reported cost above the most the request could cost: logged once (a job's, once per
    process, however often it reports it) and counted in /metrics."""
    if job_id is not None:
        if job_id in _CAPPED_JOBS:
            return
        if len(_CAPPED_JOBS) >= _CAPPED_JOBS_MAX:
            _CAPPED_JOBS.clear()
        _CAPPED_JOBS.add(job_id)
    metrics.figure_capped(endpoint)
    log.warning(
        "the upstream reported %d credits for %s %s, above the most it could cost (%d): charged %d",
        reported,
        endpoint,
        job_id or "(answer)",
        most,
        most,
    )


def _scrape_id(payload: object) -> str | None:
    """A scrape answer's id: the team may read it back (GET /scrape/{id}) as its own."""
    data = payload.get("data") if isinstance(payload, dict) else None
    meta = data.get("metadata") if isinstance(data, dict) else None
    found = meta.get("scrapeId") if isinstance(meta, dict) else None
    return found if isinstance(found, str) and JOB_ID.fullmatch(found) else None


async def _reserve(
    ctx: AppContext,
    snap: account.Snapshot,
    row: RouteRow,
    cost: int,
    slots: int,
    target: str | None,
    logged: RequestFields,
    wait_ms: int,
) -> ReservationView:
    """Hold credits and up to `slots` of the team's concurrency (domain/concurrency.py);
    while none is free, wait in a bounded queue."""
    request = ReserveRequest(
        key=snap.key.id,
        credits=max(cost, 1),
        endpoint=row.endpoint or None,
        api_version=row.version,
        target=target[:2048] if target else None,
        ttl_ms=ASYNC_TTL_MS if row.kind is RouteKind.JOB_START else SYNC_TTL_MS,
        slots=slots,
    )
    team = snap.team.id
    deadline = time.monotonic() + wait_ms / 1000
    until_ms = int(time.time() * 1000) + wait_ms + 1000  # past this a ticket is a dead waiter's
    ticket: int | None = None
    limited = ConcurrencyLimited(snap.plan.concurrency, snap.plan.concurrency)
    first = await ctx.limiter.queued(team) == 0  # none waits: it may try at once
    try:
        while True:
            if first or await ctx.limiter.is_next(team, ticket or 0):
                first = False
                try:
                    view = await _admit(ctx, snap, request)
                    if ticket is not None:
                        logged.outcome = Outcome.QUEUED
                    return view
                except ConcurrencyLimited as exc:
                    limited = exc
            if ticket is None:  # wait in the team's queue, behind those who came before
                ticket = await ctx.limiter.enter_queue(team, max(ctx.queue_room, 1), until_ms)
                if ticket is None:
                    logged.outcome = Outcome.QUEUE_FULL
                    raise _retry_soon(limited) from None
            if time.monotonic() >= deadline:
                logged.outcome = Outcome.QUEUE_TIMEOUT
                raise _retry_soon(limited) from None
            await asyncio.sleep(0.05)
    finally:
        if ticket is not None:
            await ctx.limiter.leave_queue(team, ticket)


async def _admit(
    ctx: AppContext, snap: account.Snapshot, request: ReserveRequest
) -> ReservationView:
    """A synchronous request's admission: on this process's credit lease for the key when
    leases are on and it has room (services/leases.py: no write now, its charge drawn in a
    batch after the answer), else a hold of its own."""
    if ctx.leases is not None and request.slots == 1:
        ticket = await ctx.leases.admit(snap.team.id, snap.key, snap.plan.concurrency, request)
        if ticket is not None:
            return ticket
    return await _take_hold(ctx, snap, request)


async def _take_hold(
    ctx: AppContext, snap: account.Snapshot, request: ReserveRequest
) -> ReservationView:
    """A hold with its slots, owned by this process, within the plan's concurrency
    (ConcurrencyLimited when no slot is free)."""
    hold = reservations.Reserve(
        request, ctx.clock(), max_open=snap.plan.concurrency, owner=ctx.process_id, key=snap.key
    )
    view: ReservationView = await ctx.write(hold, snap.team.id)
    return view


def _retry_soon(limited: ConcurrencyLimited) -> HTTPError:
    """The 429 of a full queue: a slot frees when a page ends, so retry in a second."""
    return HTTPError(429, limited.message, headers={"Retry-After": "1"}, **limited.details)


async def _job_route(
    ctx: AppContext, upstream: Upstream, request: Request, match: Match, snap: account.Snapshot
) -> Response:
    """Read or cancel a job: only the team that started it; reading its status settles it."""
    job_id = match.job_id or ""
    job = await ctx.team_blocking(snap.team.id, jobs.team_job, ctx.db, snap.team.id, job_id)
    if job is None:
        start = await ctx.team_blocking(snap.team.id, queued.get, ctx.db, snap.team.id, job_id)
        if start is not None:  # accepted here, not (yet) started upstream
            return await _queued_route(ctx, upstream, request, match, snap, start)
        if not await ctx.team_blocking(snap.team.id, jobs.owns, ctx.db, snap.team.id, job_id):
            raise HTTPError(404, JOB_NOT_FOUND)  # neither a job it started nor a scrape it made
    row = match.row
    query = _query(request) if row.kind is RouteKind.JOB_READ else ""
    upstream_id = job_id if job is None else job.upstream_job_id
    try:
        answer = await upstream.send(
            row.method,
            row.upstream_path(upstream_id),
            query,
            _forwarded(request),
            b"",
            team=snap.team.id,
        )
    except UpstreamFailed as exc:
        fields(request).outcome = Outcome.UPSTREAM_FAILED
        return fail(exc.status, exc.error)
    if answer.status >= 400:
        fields(request).outcome = Outcome.UPSTREAM
    payload = answer.json()
    if job is not None and answer.status < 300:
        if row.kind is RouteKind.JOB_CANCEL:
            await ctx.team_blocking(snap.team.id, jobs.mark_cancelled, ctx.db, job, ctx.clock())
            await follow(ctx, upstream, job)  # settle what was done so far; the rest follows
        elif _is_status_of(row, job) and isinstance(payload, dict):
            await _apply(ctx, upstream, job, payload)  # through v1 or v2, whichever was read
    if isinstance(payload, dict):  # no link to the upstream ever leaves, whatever was read
        _rewrite_links(payload, upstream.base_url, public_base(ctx, request))
        if upstream_id != job_id:  # the client knows the job by its own id only
            _rename(payload, upstream_id, job_id)
        return JSON(payload, status_code=answer.status)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def _is_status_of(row: RouteRow, job: jobs.Job) -> bool:
    """Is this row a status read of this job's product, under either version?"""
    product = job.status_path.split("/", 2)[2].removesuffix(f"/{job.upstream_job_id}")
    return row.path.split("/", 2)[2] == f"{product}/{{id}}"


async def follow(ctx: AppContext, upstream: Upstream, job: jobs.Job) -> None:
    """Poll one job's status upstream and settle what it reports."""
    try:
        answer = await upstream.send(
            "GET", job.status_path, "", {}, b"", timeout_s=POLL_TIMEOUT_S, team=job.team_id
        )
    except UpstreamFailed as exc:
        log.warning("job %s: status poll failed: %s", job.id, exc.error)
        return
    payload = answer.json()
    if answer.status < 300 and isinstance(payload, dict):
        await _apply(ctx, upstream, job, payload)
    elif answer.status == 404:  # the upstream forgot the job: settle what we know, close it
        await ctx.team_blocking(
            job.team_id, jobs.apply_report, ctx.db, job, None, "failed", ctx.clock()
        )


async def _apply(
    ctx: AppContext, upstream: Upstream, job: jobs.Job, payload: dict[str, Any]
) -> None:
    done = payload.get("completed")
    done = done if isinstance(done, int) and not isinstance(done, bool) and done > 0 else None
    used = _reported(payload, pricing.reported_job_cost)
    if used is None:  # llms.txt, deep research: charged by what the answer shows
        used = pricing.figureless_job_cost(job.endpoint, payload, job.hold_ceiling)
    if used is None and done is not None and job.page_price is not None:
        used = done * job.page_price  # no count of credits: its pages at the table's price
    most = jobs.capped(job, used)
    if most is not None and used is not None and most < used:  # apply_report charges `most`
        _note_capped(job.endpoint, job.id, used, most)
    status = payload.get("status")
    status = status if isinstance(status, str) else None
    pending = concurrency.pending_pages(payload)
    verdict = await ctx.team_blocking(
        job.team_id,
        jobs.apply_report,
        ctx.db,
        job,
        used,
        status,
        ctx.clock(),
        pending,
        ctx.page_grace_ms,
        done,
        ctx.poll_ms,
    )
    if verdict is jobs.Next.CANCEL and job.cancel_path is not None:
        log.info("job %s: the team cannot pay for more pages; cancelling it upstream", job.id)
        try:
            await upstream.send("DELETE", job.cancel_path, "", {}, b"", team=job.team_id)
        except UpstreamFailed as exc:
            log.warning("job %s: cancel failed: %s", job.id, exc.error)
            return
        await ctx.team_blocking(job.team_id, jobs.mark_cancelled, ctx.db, job, ctx.clock())


def _rewrite_links(payload: dict[str, Any], upstream_base: str, own_base: str) -> None:
    """Pagination and status links must point back at the gateway, not the upstream."""
    for field in ("next", "url"):
        value = payload.get(field)
        if isinstance(value, str) and value.startswith(upstream_base):
            payload[field] = own_base + value[len(upstream_base) :]


def _rename(payload: dict[str, Any], upstream_id: str, client_id: str) -> None:
    """A queued job's answers name it by the client's id: in its links and its `id`."""
    for field in ("next", "url"):
        value = payload.get(field)
        if isinstance(value, str):
            payload[field] = value.replace(f"/{upstream_id}", f"/{client_id}")
    if payload.get("id") == upstream_id:
        payload["id"] = client_id


def _parse(body: bytes) -> object:
    if not body.strip():
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # Firecrawl's own answer to a body it cannot parse
        raise HTTPError(
            400, "Bad request, malformed JSON", code="BAD_REQUEST_INVALID_JSON"
        ) from exc


# --- job starts that find no slot free: accepted at once, started when slots free ------------

CANCELLED_ANSWER = {"status": "cancelled"}  # Firecrawl's crawl-cancel answer, v1 and v2
STARTING_WAIT_S = 10.0  # a cancel of a start being forwarded waits this long for its outcome


async def _hold_job(
    ctx: AppContext,
    request: Request,
    row: RouteRow,
    snap: account.Snapshot,
    parsed: dict[str, Any],
    plan: HoldPlan,
    slots: int,
    target: str | None,
) -> ReservationView | Response:
    """A job start's hold with its slots, to forward now; or, when no slot is free or earlier
    starts of the team still wait (a later start never overtakes them), the start accepted
    and queued (services/queued.py): Firecrawl's answer to an accepted start."""
    hold_request = ReserveRequest(
        key=snap.key.id,
        credits=max(plan.first, 1),
        endpoint=row.endpoint or None,
        api_version=row.version,
        target=target[:2048] if target else None,
        ttl_ms=ASYNC_TTL_MS,
        slots=slots,
    )
    if not await ctx.team_blocking(snap.team.id, queued.waiting, ctx.db, snap.team.id):
        try:
            view = await _take_hold(ctx, snap, hold_request)
            return view
        except ConcurrencyLimited:
            pass
    return await _enqueue(ctx, request, row, snap, parsed, plan, hold_request)


async def _enqueue(
    ctx: AppContext,
    request: Request,
    row: RouteRow,
    snap: account.Snapshot,
    parsed: dict[str, Any],
    plan: HoldPlan,
    hold_request: ReserveRequest,
) -> Response:
    """Hold the start's credits (no slot yet) and store it, in one write; answer its id."""
    job_id = str(uuid.uuid4())
    now = ctx.clock()
    start = queued.QueuedStart(
        id=job_id,
        team_id=snap.team.id,
        seq=0,
        key_id=snap.key.id,
        reservation_id="",
        endpoint=row.endpoint,
        api_version=row.version,
        method=row.method,
        path=row.path,
        body=orjson.dumps(parsed).decode(),
        headers=orjson.dumps(_forwarded(request)).decode(),  # never the client's token
        slots=hold_request.slots,
        hold_step=plan.step,
        hold_ceiling=plan.ceiling,
        page_price=plan.page_price,
        page_limit=plan.page_limit,
        target=hold_request.target,
        state=queued.State.QUEUED,
        created_at=now,
        updated_at=now,
    )
    hold = reservations.Reserve(
        replace(hold_request, job_id=job_id), now, key=snap.key, queued=True
    )
    view = await ctx.team_blocking(snap.team.id, queued.accept, ctx.db, hold, start)
    logged = fields(request)
    logged.held, logged.outcome = view.credits, Outcome.QUEUED
    metrics.queued_start("accepted")
    log.info("job start %s of team %s queued (%s): no slot free", job_id, snap.team.id, row.path)
    status_url = public_base(ctx, request) + row.status_path(job_id)
    return JSON(queued_answers.start_answer(row.endpoint, job_id, status_url))


async def _queued_route(
    ctx: AppContext,
    upstream: Upstream,
    request: Request,
    match: Match,
    snap: account.Snapshot,
    start: queued.QueuedStart,
) -> Response:
    """Read or cancel a job start accepted here, before the upstream has it."""
    row = match.row
    if start.state is queued.State.STARTING:  # being forwarded now: its outcome is near
        deadline = time.monotonic() + STARTING_WAIT_S
        while start.state is queued.State.STARTING and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            found = await ctx.team_blocking(
                snap.team.id, queued.get, ctx.db, snap.team.id, start.id
            )
            start = found or start
    if start.state is queued.State.STARTED:  # the upstream has it now: ask the upstream
        return await _job_route(ctx, upstream, request, match, snap)
    if row.endpoint != start.endpoint:  # e.g. a crawl's id read as a batch's
        raise HTTPError(404, JOB_NOT_FOUND)
    if row.kind is RouteKind.JOB_CANCEL:
        if start.state is queued.State.STARTING:
            raise HTTPError(
                409, "The job is being started; retry the cancel.", headers={"Retry-After": "1"}
            )
        if start.state is queued.State.QUEUED:
            after = await ctx.team_blocking(
                snap.team.id, queued.cancel, ctx.db, snap.team.id, start.id, ctx.clock()
            )
            if after is not None and after.state is not queued.State.CANCELLED:
                return await _queued_route(ctx, upstream, request, match, snap, after)
            metrics.queued_start("cancelled")
            log.info(
                "queued job start %s of team %s cancelled before it started", start.id, snap.team.id
            )
        return JSON(dict(CANCELLED_ANSWER))
    if row.path.endswith("/errors"):
        return JSON({"errors": [], "robotsBlocked": []})
    body = orjson.loads(start.body)
    expires = format_iso(start.created_at + jobs.JOB_HOLD_MS)
    answer = queued_answers.status_answer(
        start.endpoint,
        str(start.state),
        start.error,
        expires,
        body if isinstance(body, dict) else {},
    )
    return JSON(answer)


async def start_queued(ctx: AppContext, upstream: Upstream, claimed: queued.Claimed) -> None:
    """Forward a queued start that has taken its slots (services/queued.py claim_next), then
    follow the job the upstream started, under the client's id."""
    start = claimed.start
    body = orjson.loads(start.body)
    capped = concurrency.forwarded_body(start.endpoint, body, claimed.slots)
    body = capped if capped is not None else body
    sent, path = orjson.dumps(body), start.path
    if start.endpoint == "crawl" and start.api_version == "v2":
        try:
            path, sent = await _v2_crawl_form(upstream, path, body, sent)
        except HTTPError as exc:  # the upstream was learned anew meanwhile: not startable
            await _start_failed(ctx, start, exc.error, linger=False)
            return
    headers = orjson.loads(start.headers)
    log.info(
        "queued job start %s of team %s: forwarding with %d slots",
        start.id,
        start.team_id,
        claimed.slots,
    )
    try:
        answer = await upstream.send(start.method, path, "", headers, sent, team=start.team_id)
    except UpstreamFailed as exc:
        # As a start forwarded at once: one whose answer broke off may have started upstream,
        # so its slots stay the page grace; one that never got there is released now.
        await _start_failed(ctx, start, exc.error, linger=exc.may_still_run)
        return
    payload = answer.json()
    upstream_id = payload.get("id") if isinstance(payload, dict) else None
    if (
        answer.status >= 300
        or not isinstance(upstream_id, str)
        or not JOB_ID.fullmatch(upstream_id)
    ):
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, str):
            error = f"The upstream refused to start the job ({answer.status})."
        await _start_failed(ctx, start, error, linger=False)
        return
    status_path = f"{start.path}/{upstream_id}"
    cancel = ctx.routes.match("DELETE", status_path)
    new = jobs.NewJob(
        id=start.id,
        team_id=start.team_id,
        reservation_id=start.reservation_id,
        key_id=start.key_id,
        endpoint=start.endpoint,
        status_path=status_path,
        cancel_path=None if cancel is None else status_path,
        hold_step=start.hold_step,
        hold_ceiling=start.hold_ceiling,
        page_price=start.page_price,
        page_limit=start.page_limit,
        upstream_id=upstream_id,
        page_timeout_ms=cancels.page_timeout_ms(start.endpoint, body),
    )
    try:
        recorded = await ctx.team_blocking(
            start.team_id, queued.record_started, ctx.db, start, new, ctx.clock(), ctx.poll_ms
        )
    except Conflict:
        log.error("queued start %s answered with %s, a job already followed", start.id, upstream_id)
        await _start_failed(
            ctx, start, "The upstream answered with a job already followed.", linger=True
        )
        return
    if not recorded:  # taken for abandoned meanwhile (its hold released): stop it upstream
        log.error(
            "queued start %s was given up while it started; cancelling %s", start.id, upstream_id
        )
        if cancel is not None:
            with contextlib.suppress(UpstreamFailed):
                await upstream.send("DELETE", status_path, "", {}, b"", team=start.team_id)
        return
    metrics.queued_start("started")
    log.info(
        "queued job start %s of team %s started upstream as %s",
        start.id,
        start.team_id,
        upstream_id,
    )


async def _start_failed(
    ctx: AppContext, start: queued.QueuedStart, error: str, *, linger: bool
) -> None:
    metrics.queued_start("failed")
    log.warning("queued job start %s of team %s failed: %s", start.id, start.team_id, error)
    failed = await ctx.team_blocking(
        start.team_id,
        queued.fail,
        ctx.db,
        start,
        queued.State.STARTING,
        error,
        ctx.clock(),
        release=not linger,
    )
    if failed and linger:
        await _release_later(ctx, _releaser(ctx, start.team_id, start.reservation_id))
