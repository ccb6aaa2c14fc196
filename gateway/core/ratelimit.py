"""Per-caller rate limiting with token buckets.

One bucket per API key: ``rate`` tokens a second up to ``burst``. A refused call learns how long
to wait, so the transport can send a retry hint. Buckets live in memory per replica; with N
replicas behind a balancer a key gets up to N times the rate, which bounds abuse without a
shared store on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max = max_buckets
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited with the seconds until the next one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens < 1.0 - 1e-9:  # tolerate float error in the refill
            wait = (1.0 - bucket.tokens) / self._rate
            raise RateLimited(f"rate limit for {key} exceeded; retry in {wait:.2f}s", wait)
        bucket.tokens -= 1.0

    def _evict(self, now: float) -> None:
        # Buckets that have refilled completely carry no state worth keeping.
        full = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full]:
            del self._buckets[key]
        if len(self._buckets) >= self._max:
            self._buckets.clear()
