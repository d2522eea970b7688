"""What every handler can reach: the database, the clock, limits, and the admin token."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from creditgate.domain.instants import Instant, now
from creditgate.domain.plans import ACCOUNT_ROUTES_RPM
from creditgate.domain.price_table import DEFAULT_PRICES, PriceTable
from creditgate.domain.routes import DEFAULT_TABLE, RouteTable
from creditgate.services import ledger
from creditgate.services.keys import KeyUses
from creditgate.services.leases import LeaseManager
from creditgate.services.ledger import Operation
from creditgate.services.writer import Writer
from creditgate.storage.database import Database, DeadlineExceeded
from creditgate.web.fairshare import FairShares
from creditgate.web.limits import Limiter, MemoryLimiter
from creditgate.web.upstream import Upstream

T = TypeVar("T")


@dataclass
class AppContext:
    db: Database
    admin_token: str | None = None
    account_rpm: int = ACCOUNT_ROUTES_RPM
    clock: Callable[[], Instant] = now
    limiter: Limiter = field(default_factory=MemoryLimiter)
    max_body_bytes: int = 1 << 20
    max_batch_events: int = 1_000
    sweep_seconds: float = 5.0  # how often expired reservations are released
    upstream: Upstream | None = None  # the Firecrawl the gateway fronts; None: no gateway
    queue_wait_seconds: float = 30.0  # the most a request waits for a concurrency slot
    queue_room: int = 100  # requests of a team that may wait for a slot at once
    follow_seconds: float = 1.0  # how often the gateway polls its open upstream jobs
    # How long a page may still run upstream once creditgate stopped waiting for it (a job
    # cancelled, an answer timed out): its slot stays taken, its pages are still charged.
    page_grace_seconds: float = 60.0
    disk_full_at: float | None = None  # monotonic: a write refused for a full disk
    webhook_seconds: float = 1.0  # how often due webhook deliveries are sent; 0: never
    routes: RouteTable = DEFAULT_TABLE  # what the gateway forwards; nothing else is
    prices: PriceTable = DEFAULT_PRICES  # what the work costs, for holds and caps
    public_url: str | None = None  # where clients reach the gateway (rewritten links)
    upgrade_url: str | None = None  # the plans page 402/429 texts name; None: Firecrawl's
    cors_origins: tuple[str, ...] = ("*",)
    process_id: str | None = None  # this process's row in `processes` (gateway mode)
    metering: bool = True  # off (for measuring the proxy alone): authenticate and forward only
    use_leases: bool = False  # admit synchronous metered requests on credit leases (README)
    leases: LeaseManager | None = None  # this process's leases, while the app runs
    writer: Writer | None = None  # group commit of ledger operations, while the app runs
    key_uses: KeyUses = field(default_factory=KeyUses)  # keys' last use, written in rounds
    key_use_seconds: float = 10.0  # how often keys' last uses are written; 0: at shutdown only
    shares: FairShares = field(default_factory=FairShares)  # per-team bounds (web/fairshare.py)
    # Signs the dashboard's session cookies (settings.session_key(); random when not given).
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    async def write(self, op: Operation[Any], team_id: str | None = None) -> Any:
        """Apply a ledger operation: batched with its team's other pending ones while the app
        runs (services/writer.py), else in a transaction of its own. `team_id` when known."""
        if self.writer is not None:
            return await self.writer.run(op, team_id)
        return await blocking(ledger.run, self.db, op)

    async def team_blocking(self, team: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A team's database call off the event loop, at most `shares.database` of the team's
        at once in this process: a team's pile of calls waits for its own, not for others'."""
        async with self.shares.database.place(team):
            return await blocking(fn, *args, **kwargs)  # within the call deadline too

    @property
    def page_grace_ms(self) -> int:
        return max(int(self.page_grace_seconds * 1000), 0)

    @property
    def poll_ms(self) -> int:
        """How long a followed job waits between two polls."""
        return max(int(self.follow_seconds * 1000), 100)


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call (synchronous database work) off the event loop: within the call
    deadline of the Database among its arguments (bounded()), if any."""
    db = next((a for a in (*args, *kwargs.values()) if isinstance(a, Database)), None)
    if db is not None and db.call_seconds is not None:
        return await bounded(db, partial(fn, *args, **kwargs))
    return await run_in_threadpool(fn, *args, **kwargs)


async def quick_read(db: Database, fn: Callable[..., T], *args: Any) -> T:
    """A single-statement read: inline on SQLite, where it takes tens of microseconds and a
    thread hop would cost more than the read; in a worker thread on PostgreSQL (network I/O),
    within its deadline."""
    if db.is_sqlite:
        return fn(*args)
    if db.call_seconds is not None:
        return await bounded(db, partial(fn, *args))
    return await run_in_threadpool(fn, *args)


async def chunks(db: Database, body: Iterator[T]) -> AsyncIterator[T]:
    """`body`'s items (each read from `db`), each read in a worker thread within the deadline."""
    done = object()
    while True:
        item = await blocking(_next, body, done, db)
        if item is done:
            return
        yield item  # type: ignore[misc]


def _next(body: Iterator[T], done: object, _db: Database) -> T | object:
    """(`_db` names the database read, for blocking()'s deadline.)"""
    return next(body, done)


async def bounded(db: Database, fn: Callable[[], T]) -> T:
    """`fn` (calls of `db`) in a worker thread, answered within `db.call_seconds` whatever the
    server does: past it the thread is abandoned and DeadlineExceeded raised (a 503). What an
    abandoned call was doing goes on until the server answers or its link is given up
    (Database's keepalives); a read's result is dropped, its pooled connection returned when
    it ends (a connection cut off mid-answer is invalidated, never reused). While
    `db.calls.limit` abandoned calls still run, a new call fails at once: stuck threads do not
    pile up."""
    stuck = db.calls
    with stuck.lock:
        if stuck.count >= stuck.limit:
            raise DeadlineExceeded(f"{stuck.count} database calls are stuck: not starting one")
    state = {"ended": False, "abandoned": False}

    def call() -> T:
        try:
            return fn()
        finally:
            with stuck.lock:
                state["ended"] = True
                if state["abandoned"]:
                    stuck.count -= 1

    seconds = db.call_seconds
    try:
        with anyio.fail_after(seconds):
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    except TimeoutError:
        raise DeadlineExceeded(f"the database did not answer in {seconds} s") from None
    finally:
        with stuck.lock:
            if not state["ended"]:  # timed out, or its request was cancelled
                state["abandoned"] = True
                stuck.count += 1
