"""The sign-in throttle: failures per account name and per client within a sliding window."""

from __future__ import annotations

import pytest

from gateway.core.accounts import LoginThrottle
from gateway.errors import RateLimited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _throttle(attempts: int = 3, window: float = 60.0) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(attempts=attempts, window=window, clock=clock), clock


def test_attempts_are_refused_once_the_failures_are_used_up() -> None:
    """After `attempts` failures the key is refused, with the wait in the error."""
    throttle, clock = _throttle()
    for _ in range(3):
        throttle.check("name:ann")
        throttle.failed("name:ann")
        clock.now += 1
    with pytest.raises(RateLimited, match="try again in 58 s") as err:
        throttle.check("name:ann")
    assert err.value.retry_after == pytest.approx(57.0)


def test_failures_age_out_of_the_window() -> None:
    """A failure older than the window no longer counts: the limit slides."""
    throttle, clock = _throttle()
    throttle.failed("name:ann")
    clock.now += 30
    throttle.failed("name:ann")
    throttle.failed("name:ann")
    with pytest.raises(RateLimited):
        throttle.check("name:ann")
    clock.now += 30  # the first failure is exactly one window old
    throttle.check("name:ann")


def test_any_exhausted_key_refuses_the_attempt() -> None:
    """A client spraying many names is stopped by its client key even with fresh names."""
    throttle, _ = _throttle()
    for name in ("a", "b", "c"):
        throttle.failed(f"name:{name}", "client:10.0.0.9")
    with pytest.raises(RateLimited):
        throttle.check("name:fresh", "client:10.0.0.9")
    throttle.check("name:fresh", "client:10.0.0.10")


def test_success_clears_the_name_but_not_the_client() -> None:
    """A correct password resets its account's count; the client's count stays."""
    throttle, _ = _throttle()
    for _ in range(2):
        throttle.failed("name:ann", "client:c")
    throttle.succeeded("name:ann")
    throttle.failed("name:ann", "client:c")
    throttle.check("name:ann")
    with pytest.raises(RateLimited):
        throttle.check("client:c")


def test_memory_stays_bounded_under_a_spray_of_names() -> None:
    """Beyond `max_keys` keys the table is cleared instead of growing."""
    throttle = LoginThrottle(attempts=1, max_keys=10)
    for i in range(25):
        throttle.failed(f"name:{i}")
    assert len(throttle._failures) <= 10
