"""Token buckets per client: the one rate limit every public door uses (writes, open data).

Pure and in memory: each process counts its own clients (no shared store on the hot path).
"""

from __future__ import annotations

import math
import threading


class TokenBuckets:
    """A bucket per client: ``burst`` tokens, refilled at ``per_minute``; a request takes one.

    Buckets that have refilled are forgotten (a full bucket is the same as none), so a flood from
    many addresses costs memory only for as long as each address is still counted. Safe to share
    between threads (a sync route's dependency runs in the thread pool).
    """

    def __init__(self, burst: int, per_minute: float) -> None:
        self.burst, self.rate = burst, per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # client → (tokens, when)
        self._swept = -math.inf
        self._lock = threading.Lock()

    def take(self, client: str, now: float) -> float:
        """0 when the request may go ahead (a token taken), else the seconds until one is there."""
        with self._lock:
            self._sweep(now)
            tokens = self._tokens(client, now)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            return (1 - tokens) / self.rate

    def _tokens(self, client: str, now: float) -> float:
        tokens, when = self._buckets.get(client, (self.burst, now))
        return min(float(self.burst), tokens + (now - when) * self.rate)

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.burst / self.rate:  # at most once per time to refill
            return
        self._swept = now
        self._buckets = {c: b for c, b in self._buckets.items() if self._tokens(c, now) < self.burst}

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> int:
    """Whole seconds for ``Retry-After`` (it has no fractions), never 0: the bucket is empty now."""
    return max(1, math.ceil(wait))
