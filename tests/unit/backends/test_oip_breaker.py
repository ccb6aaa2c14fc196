"""Circuit breaker states and backoff delays."""

from __future__ import annotations

import random

import pytest

from gateway.backends.breaker import CircuitBreaker, CircuitState
from gateway.backends.retry import backoff_delays


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    """N failures in a row open the circuit; a success in between resets the count."""
    clock = Clock()
    breaker = CircuitBreaker(3, 5.0, clock)
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 5.0


def test_half_open_lets_one_probe_through() -> None:
    """After the cool-down exactly one call probes; its success closes the circuit."""
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.failure()
    clock.now += 5.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # the probe is in flight
    breaker.success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_failed_probe_reopens_for_another_cooldown() -> None:
    """A failed probe opens the circuit again from that moment."""
    clock = Clock()
    breaker = CircuitBreaker(2, 5.0, clock)
    breaker.failure()
    breaker.failure()
    clock.now += 6.0
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and breaker.retry_in() == 5.0


def test_released_probe_frees_the_slot() -> None:
    """A cancelled probe neither closes nor re-opens; the next call may probe."""
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


class Highest(random.Random):
    """Draws the top of every range: each jittered delay is then exactly its cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    """Delays stay within a cap that doubles from the initial value to the maximum, and grow."""
    delays = backoff_delays(initial=0.1, factor=2.0, maximum=0.5, rng=random.Random(7))
    got = [next(delays) for _ in range(6)]
    caps = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert all(0 <= d <= c for d, c in zip(got, caps, strict=True))
    assert len(set(got)) == 6

    # The caps themselves: double, then hold at the maximum.
    top = backoff_delays(initial=0.1, factor=2.0, maximum=0.5, rng=Highest())
    assert [next(top) for _ in range(6)] == pytest.approx(caps)

    # With real jitter, the mean delay at each retry follows its cap (half of it): it grows
    # until the maximum, then stays.
    rng = random.Random(11)
    runs = 2000
    sums = [0.0] * 6
    for _ in range(runs):
        series = backoff_delays(initial=0.1, factor=2.0, maximum=0.5, rng=rng)
        for i in range(6):
            sums[i] += next(series)
    means = [s / runs for s in sums]
    assert means == pytest.approx([c / 2 for c in caps], rel=0.1)
    assert means[0] < means[1] < means[2] < means[3]
