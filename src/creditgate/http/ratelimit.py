"""Requests-per-minute limits, in process: a fixed one-minute window per (team, mode).

Firecrawl's limiter counts per minute and says when the window resets; this keeps that contract.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

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


class RateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[Instant, int]] = {}

    def hit(self, subject: str, mode: str, limit: int, now: Instant) -> Decision:
        window = now - now % WINDOW_MS
        with self._lock:
            start, count = self._windows.get((subject, mode), (window, 0))
            if start != window:
                start, count = window, 0
            allowed = count < limit
            if allowed:
                count += 1
                self._windows[(subject, mode)] = (start, count)
            if len(self._windows) > 100_000:  # forget closed windows
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return Decision(allowed, count, max(limit - count, 0), window + WINDOW_MS)
