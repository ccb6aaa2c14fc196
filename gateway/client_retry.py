"""When the Python clients retry a Decide by themselves, and how long they wait.

The gateway answers UNAVAILABLE with a retry pushback when its store could not commit (a full
disk, a database restarting): the decision was not recorded, or, when the connection broke
during COMMIT, may have been. Both are safe to retry with the same idempotency key: the gateway
makes the decision once and returns the recorded one to every later call with the key. So the
clients always send a key (a random one when the caller gave none) and retry such answers a
bounded number of times. UNAVAILABLE naming a decision (a model down, rejected by policy) is a
recorded answer and never retried, nor is a gateway that cannot be reached at all.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc


def new_idempotency_key() -> str:
    """A random key for a call whose caller gave none, so that its retries are safe."""
    return f"auto-{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded, jittered waits between attempts of one Decide."""

    attempts: int = 5
    """Most calls in all, the first included; 1 turns retrying off."""
    first_delay: float = 0.2
    """Seconds before the second call; the delay doubles after each further call."""
    max_delay: float = 3.0
    """Longest wait between two calls."""
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError("RetryPolicy needs 0 < first_delay <= max_delay")

    def wait(
        self, attempt: int, code: grpc.StatusCode, decision_id: str, pushback: float | None
    ) -> float | None:
        """Seconds to wait before call ``attempt + 1`` after call ``attempt`` (from 1) failed
        with ``code``, or None to give up.

        Between half and all of the doubling delay, so clients that failed together do not all
        come back together, and never less than the gateway's pushback.
        """
        store_failed = code is grpc.StatusCode.UNAVAILABLE and pushback is not None
        if not store_failed or decision_id or attempt >= self.attempts:
            return None
        delay = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        return max(self.uniform(delay / 2, delay), pushback or 0.0)
