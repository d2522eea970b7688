"""Requests-per-minute limits and the bounded wait for a concurrency slot.

A fixed one-minute window per (team, mode), as Firecrawl's limiter counts and reports it. In one
process the counts live in memory; with CREDITGATE_REDIS_URL they live in Redis and hold across
every gateway process. (Concurrency itself is decided by the ledger: a job is an open
reservation, admitted under the team's row lock, so it holds across processes without Redis.)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

from creditgate.domain.instants import Instant

WINDOW_MS = 60_000


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
    async def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision: ...
    async def enter_queue(self, subject: str, bound: int) -> bool: ...
    async def leave_queue(self, subject: str) -> None: ...


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[Instant, int]] = {}
        self._waiting: dict[str, int] = {}

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

    async def enter_queue(self, subject: str, bound: int) -> bool:
        with self._lock:
            if self._waiting.get(subject, 0) >= bound:
                return False
            self._waiting[subject] = self._waiting.get(subject, 0) + 1
            return True

    async def leave_queue(self, subject: str) -> None:
        with self._lock:
            self._waiting[subject] = max(self._waiting.get(subject, 1) - 1, 0)


class RedisLimiter:
    """The same windows and queue counts in Redis, shared by every gateway process."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)

    async def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision:
        window = now - now % WINDOW_MS
        key = f"creditgate:rate:{subject}:{mode}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, WINDOW_MS * 2)
            count, _ = await pipe.execute()
        return _decide(int(count), limit, window)

    async def enter_queue(self, subject: str, bound: int) -> bool:
        key = f"creditgate:waiting:{subject}"
        waiting = int(await self._redis.incr(key))
        await self._redis.expire(key, 3600)
        if waiting > bound:
            await self._redis.decr(key)
            return False
        return True

    async def leave_queue(self, subject: str) -> None:
        await self._redis.decr(f"creditgate:waiting:{subject}")

    async def close(self) -> None:
        await self._redis.aclose()
