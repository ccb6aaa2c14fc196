"""Token-bucket rate limiting per caller."""

from __future__ import annotations

import pytest

from gateway.core.ratelimit import RateLimiter
from gateway.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_with_retry_hint() -> None:
    """A key gets its burst at once, then is refused with the time until the next token."""
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    for _ in range(3):
        limiter.acquire("k")
    with pytest.raises(RateLimited) as err:
        limiter.acquire("k")
    assert err.value.retry_after == pytest.approx(0.1)
    clock.now += 0.1
    limiter.acquire("k")


def test_keys_are_independent() -> None:
    """One caller using up its bucket does not slow another."""
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    limiter.acquire("a")
    with pytest.raises(RateLimited):
        limiter.acquire("a")
    limiter.acquire("b")


def test_refill_is_capped_at_burst() -> None:
    """A long idle time refills to the burst size, not beyond."""
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=2, clock=clock)
    limiter.acquire("k")
    clock.now += 3600
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimited):
        limiter.acquire("k")


def test_bucket_table_is_bounded() -> None:
    """Many distinct keys cannot grow the limiter's memory without bound."""
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock, max_buckets=100)
    for i in range(1000):
        limiter.acquire(f"k{i}")
    assert len(limiter._buckets) <= 100


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0)])
def test_invalid_settings(rate: float, burst: float) -> None:
    """A non-positive rate or a burst below one is a configuration error."""
    with pytest.raises(ValueError):
        RateLimiter(rate=rate, burst=burst)
