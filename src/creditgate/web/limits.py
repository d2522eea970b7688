"""Requests-per-minute limits and the bounded wait for a concurrency slot.

A fixed one-minute window per (team, mode), as Firecrawl's limiter counts and reports it. In one
process the counts live in memory; with CREDITGATE_REDIS_URL they live in Redis and hold across
every gateway process. (Concurrency itself is decided by the ledger: a job is an open
reservation, admitted under the team's row lock, so it holds across processes without Redis.)

Redis being down, frozen or failing never fails a request: every call to it is bounded
(REDIS_TIMEOUT_SECONDS), and on a failure the limits fall back to this process's memory for
REDIS_RETRY_SECONDS before Redis is tried again; the failure is logged at most once a minute.
Meanwhile each process allows its share of every limit, ceil(limit / processes), `processes`
being the gateway processes alive (services/processes.py, counted at each heartbeat): in a
window wholly within an outage a team gets at most limit + processes - 1 across them all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from creditgate.domain.instants import Instant

log = logging.getLogger("creditgate.limits")

WINDOW_MS = 60_000
REDIS_TIMEOUT_SECONDS = 0.5  # connect, and each read or write on the socket
REDIS_RETRY_SECONDS = 5.0  # after a failure, per-process limits for this long
LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    consumed: int
    remaining: int
    resets_at: Instant

    def retry_after_seconds(self, now: Instant) -> int:
        return max(1, math.ceil((self.resets_at - now) / 1000))


def _decide(count: int, limit: int, window: Instant) -> Decision:
    allowed = count <= limit
    consumed = min(count, limit)
    return Decision(allowed, consumed, max(limit - consumed, 0), window + WINDOW_MS)


class Limiter(Protocol):
    """Requests-per-minute windows, and the team's queue of requests waiting for a slot: a
    waiter takes a ticket (None: the queue is full) and tries for a slot only while it is
    the oldest waiter (`is_next`), so waiters are served in arrival order."""

    async def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision: ...
    async def enter_queue(self, subject: str, bound: int, until_ms: int) -> int | None: ...
    async def is_next(self, subject: str, ticket: int) -> bool: ...
    async def leave_queue(self, subject: str, ticket: int) -> None: ...
    async def queued(self, subject: str) -> int: ...


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[Instant, int]] = {}
        self._waiting: dict[str, list[int]] = {}  # tickets, oldest first
        self._tickets = 0

    def hit_now(self, subject: str, mode: str, limit: int, now: Instant) -> Decision:
        window = now - now % WINDOW_MS
        with self._lock:
            start, count = self._windows.get((subject, mode), (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[(subject, mode)] = (start, count)
            if len(self._windows) > 100_000:  # forget closed windows
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return _decide(count, limit, window)

    async def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision:
        return self.hit_now(subject, mode, limit, now)

    async def enter_queue(self, subject: str, bound: int, until_ms: int = 0) -> int | None:
        return self.enter_now(subject, bound)

    def enter_now(self, subject: str, bound: int) -> int | None:
        with self._lock:
            waiting = self._waiting.setdefault(subject, [])
            if len(waiting) >= bound:
                return None
            self._tickets += 1
            waiting.append(self._tickets)
            return self._tickets

    async def is_next(self, subject: str, ticket: int) -> bool:
        with self._lock:
            waiting = self._waiting.get(subject)
            return not waiting or waiting[0] == ticket

    async def leave_queue(self, subject: str, ticket: int) -> None:
        self.leave_now(subject, ticket)

    def leave_now(self, subject: str, ticket: int) -> bool:
        with self._lock:
            waiting = self._waiting.get(subject, [])
            if ticket not in waiting:
                return False
            waiting.remove(ticket)
            if not waiting:
                del self._waiting[subject]
            return True

    def waiting(self, subject: str) -> int:
        with self._lock:
            return len(self._waiting.get(subject, ()))

    async def queued(self, subject: str) -> int:
        return self.waiting(subject)


class RedisLimiter:
    """The same windows and queue counts in Redis, shared by every gateway process; in this
    process's memory while Redis fails (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        timeout_seconds = REDIS_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # no retries: the fallback answers at once instead
        )
        self._failures: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
        self._timeout = timeout_seconds
        self._retry_seconds = REDIS_RETRY_SECONDS if retry_seconds is None else retry_seconds
        self._memory = MemoryLimiter()
        self._members: dict[tuple[str, int], str] = {}  # this process's waiters in Redis
        self._down_until: float | None = None  # monotonic; None while Redis answers
        # Gateway processes alive (set at each heartbeat): while Redis fails, this process
        # allows ceil(limit / processes) of each window, its share of the plan's.
        self.processes = 1
        self._logged_at: float | None = None

    def _usable(self) -> bool:
        return self._down_until is None or time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_seconds
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            log.error(
                "Redis failed (%s: %s); rate limits and queues are per process until it answers",
                type(exc).__name__,
                exc,
            )

    def _answered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.warning("Redis answers again; rate limits and queues are shared again")

    async def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision:
        window = now - now % WINDOW_MS
        if self._usable():
            key = f"creditgate:rate:{subject}:{mode}:{window}"
            try:
                async with asyncio.timeout(self._timeout * 2):
                    async with self._redis.pipeline(transaction=True) as pipe:
                        pipe.incr(key)
                        pipe.pexpire(key, WINDOW_MS * 2)
                        count, _ = await pipe.execute()
            except self._failures as exc:
                self._failed(exc)
            else:
                self._answered()
                return _decide(int(count), limit, window)
        return self._memory.hit_now(subject, mode, self.share(limit), now)

    def share(self, limit: int) -> int:
        """This process's part of a limit while Redis fails."""
        return max(1, math.ceil(limit / max(self.processes, 1)))

    # The queue in Redis: a sorted set per team, each waiter a member `ticket:until_ms` scored
    # by its ticket (INCR of a counter per team); the lowest is served first. A waiter whose
    # process died leaves its member behind: once past its `until_ms` it is dropped.

    async def enter_queue(self, subject: str, bound: int, until_ms: int = 0) -> int | None:
        if self._usable():
            key = f"creditgate:queue:{subject}"
            try:
                async with asyncio.timeout(self._timeout * 4):
                    ticket = int(await self._redis.incr(f"creditgate:ticket:{subject}"))
                    member = f"{ticket}:{until_ms}"
                    await self._redis.zadd(key, {member: ticket})
                    await self._redis.expire(key, 3600)
                    rank = _rank(await self._redis.zrank(key, member))
                    if rank is not None and rank >= bound:
                        await self._drop_stale(key)
                        rank = _rank(await self._redis.zrank(key, member))
                    if rank is None or rank >= bound:
                        await self._redis.zrem(key, member)
                        self._answered()
                        return None
                    self._members[(subject, ticket)] = member
            except self._failures as exc:
                self._failed(exc)
            else:
                self._answered()
                return ticket
        own = self._memory.enter_now(subject, bound)
        return None if own is None else -own  # negative: this process's own queue

    async def _drop_stale(self, key: str) -> None:
        """Members of waiters past their time (their process died): removed."""
        now_ms = int(time.time() * 1000)
        members = [_text(m) for m in await self._redis.zrange(key, 0, -1)]
        stale = [m for m in members if 0 < int(m.split(":")[1]) < now_ms]
        if stale:
            await self._redis.zrem(key, *stale)

    async def is_next(self, subject: str, ticket: int) -> bool:
        if ticket < 0:
            return await self._memory.is_next(subject, -ticket)
        key = f"creditgate:queue:{subject}"
        try:
            async with asyncio.timeout(self._timeout * 3):
                head = [_text(m) for m in await self._redis.zrange(key, 0, 0)]
                if head and int(head[0].split(":")[0]) != ticket:
                    await self._drop_stale(key)
                    head = [_text(m) for m in await self._redis.zrange(key, 0, 0)]
        except self._failures as exc:
            self._failed(exc)
            return True  # Redis failing: no order, as each process limits on its own
        self._answered()
        return not head or int(head[0].split(":")[0]) == ticket

    async def leave_queue(self, subject: str, ticket: int) -> None:
        if ticket < 0:
            self._memory.leave_now(subject, -ticket)
            return
        member = self._members.pop((subject, ticket), None)
        if member is None:
            return
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._redis.zrem(f"creditgate:queue:{subject}", member)
        except self._failures as exc:
            self._failed(exc)

    async def queued(self, subject: str) -> int:
        """Requests waiting for a slot, in every process (and in this one while Redis fails)."""
        here = self._memory.waiting(subject)
        if not self._usable():
            return here
        try:
            async with asyncio.timeout(self._timeout * 2):
                shared = await self._redis.zcard(f"creditgate:queue:{subject}")
        except self._failures as exc:
            self._failed(exc)
            return here
        self._answered()
        return here + max(int(shared or 0), 0)

    async def ping(self) -> None:
        """Readiness: Redis answers a PING within the limiter's bound; raises otherwise."""
        async with asyncio.timeout(self._timeout * 2):
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def _text(member: object) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


def _rank(found: object) -> int | None:
    return found if isinstance(found, int) else None
