"""The sign-in throttle: places per account name and per client within a sliding window."""

from __future__ import annotations

import sys

import pytest

from gateway.core.accounts import LoginThrottle
from gateway.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _throttle(
    attempts: int = 3, window: float = 60.0, max_keys: int = 10_000
) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(attempts=attempts, window=window, clock=clock, max_keys=max_keys), clock


def test_attempts_are_refused_once_the_places_are_used_up() -> None:
    """After `attempts` reservations the key is refused, with the wait in the error."""
    throttle, clock = _throttle()
    for _ in range(3):
        throttle.reserve("name:ann")
        clock.now += 1
    with pytest.raises(RateLimited, match="try again in 58 s") as err:
        throttle.reserve("name:ann")
    assert err.value.retry_after == pytest.approx(57.0)


def test_attempts_in_flight_count_before_they_fail() -> None:
    """Reservations not yet released already count, so a burst gets only `attempts` places."""
    throttle, _ = _throttle()
    granted = 0
    for _ in range(50):
        try:
            throttle.reserve("name:ann", "client:c")
        except RateLimited:
            continue
        granted += 1
    assert granted == 3


def test_failures_age_out_of_the_window() -> None:
    """A reservation older than the window no longer counts: the limit slides."""
    throttle, clock = _throttle()
    throttle.reserve("name:ann")
    clock.now += 30
    throttle.reserve("name:ann")
    throttle.reserve("name:ann")
    with pytest.raises(RateLimited):
        throttle.reserve("name:ann")
    clock.now += 30  # the first reservation is exactly one window old
    throttle.reserve("name:ann")


def test_any_exhausted_key_refuses_the_attempt_and_takes_nothing() -> None:
    """A client spraying names is stopped by its client key; the refusal takes no name place."""
    throttle, _ = _throttle()
    for name in ("a", "b", "c"):
        throttle.reserve(f"name:{name}", "client:10.0.0.9")
    with pytest.raises(RateLimited):
        throttle.reserve("name:fresh", "client:10.0.0.9")
    for _ in range(3):
        throttle.reserve("name:fresh", "client:10.0.0.10")


def test_a_success_gives_back_only_its_own_place() -> None:
    """A released reservation frees one place of each key; earlier failures still count."""
    throttle, clock = _throttle()
    throttle.reserve("name:ann", "client:c")
    clock.now += 1
    throttle.reserve("name:ann", "client:c")
    clock.now += 1
    stamp = throttle.reserve("name:ann", "client:c")
    throttle.release(stamp, "name:ann", "client:c")
    throttle.reserve("name:ann", "client:c")
    with pytest.raises(RateLimited):
        throttle.reserve("name:ann")
    with pytest.raises(RateLimited):
        throttle.reserve("client:c")


def test_keys_leave_the_table_once_their_window_has_passed() -> None:
    """Keys used once are dropped after a window, without waiting for the table to fill."""
    throttle, clock = _throttle(attempts=1)
    for i in range(100):
        throttle.reserve(f"name:{i}")
    assert len(throttle) == 100
    clock.now += 61
    throttle.reserve("name:later")
    assert len(throttle) == 1


def test_the_table_never_holds_more_than_max_keys_nor_the_keys_themselves() -> None:
    """A spray of huge names stays within `max_keys` small entries."""
    throttle, _ = _throttle(attempts=1, max_keys=10)
    huge = "x" * 100_000
    for i in range(25):
        throttle.reserve(f"name:{i}{huge}")
    assert len(throttle) == 10
    assert all(sys.getsizeof(key) < 100 for key in throttle._taken)
