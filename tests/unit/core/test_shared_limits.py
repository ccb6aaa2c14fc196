"""The rate limit and sign-in throttle shared by forked worker processes: one budget for all of
them, checked with real forked processes on the shared mapping."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from gateway.core.shared_limits import SharedLimits, SharedLoginThrottle, SharedRateLimiter
from gateway.errors import RateLimited

ctx = multiprocessing.get_context("fork")


def _take_tokens(shared: SharedLimits, key: str, tries: int, out: Any) -> None:
    limiter = SharedRateLimiter(shared, rate=0.001, burst=5)
    taken = 0
    for _ in range(tries):
        try:
            limiter.acquire(key)
            taken += 1
        except RateLimited:
            pass
    out.put(taken)


def test_forked_workers_share_one_bucket_per_key() -> None:
    """Two processes, ten tries each, burst five: five calls pass in all; another key has its
    own five."""
    shared = SharedLimits(slots=1024)
    out = ctx.Queue()
    procs = [ctx.Process(target=_take_tokens, args=(shared, "k1", 10, out)) for _ in range(2)]
    procs.append(ctx.Process(target=_take_tokens, args=(shared, "k2", 10, out)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    taken = sorted(out.get() for _ in procs)
    assert sum(taken) == 10  # five for k1 over both processes, five for k2


def test_the_bucket_refills_at_the_rate_and_says_when_to_retry() -> None:
    now = [100.0]
    limiter = SharedRateLimiter(SharedLimits(slots=64), rate=2.0, burst=2, clock=lambda: now[0])
    limiter.acquire("k")
    limiter.acquire("k")
    with pytest.raises(RateLimited) as err:
        limiter.acquire("k")
    assert err.value.retry_after == pytest.approx(0.5)
    now[0] += 0.5
    limiter.acquire("k")


def test_a_full_neighbourhood_reuses_the_least_recently_touched_record() -> None:
    """More keys than records: every key still gets its burst (a dropped bucket was full)."""
    now = [0.0]
    limiter = SharedRateLimiter(SharedLimits(slots=8), rate=1.0, burst=1, clock=lambda: now[0])
    for i in range(100):
        now[0] += 10
        limiter.acquire(f"key-{i}")


def _fail_signins(shared: SharedLimits, tries: int, out: Any) -> None:
    throttle = SharedLoginThrottle(shared)
    passed = 0
    for _ in range(tries):
        try:
            throttle.reserve("user:rita", "addr:10.0.0.1")
            passed += 1
        except RateLimited:
            pass
    out.put(passed)


def test_failed_signins_count_over_every_worker() -> None:
    """Two processes trying four wrong passwords each: five attempts are checked in all."""
    shared = SharedLimits(slots=1024, attempts=5)
    out = ctx.Queue()
    procs = [ctx.Process(target=_fail_signins, args=(shared, 4, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    assert sum(out.get() for _ in procs) == 5


def test_a_successful_signin_gives_its_attempt_back_and_windows_pass() -> None:
    now = [1000.0]
    throttle = SharedLoginThrottle(SharedLimits(slots=64, attempts=2), 60, lambda: now[0])
    stamp = throttle.reserve("u", "a")
    throttle.release(stamp, "u", "a")
    throttle.reserve("u", "a")
    now[0] += 1
    throttle.reserve("u", "a")
    with pytest.raises(RateLimited):
        throttle.reserve("u", "other")
    now[0] += 60
    throttle.reserve("u", "a")
