"""Exponential backoff with full jitter.

Used for transient failures only (gRPC UNAVAILABLE: the connection was refused or dropped, so
the request never reached the model and repeating it is safe). The caller stops retrying when
the next delay would not leave time for another attempt before its deadline.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(
    *,
    initial: float = 0.025,
    factor: float = 2.0,
    maximum: float = 1.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield an endless series of sleep times before each retry.

    Each delay is drawn uniformly from ``[0, cap]`` (full jitter, so the retries of many callers
    do not arrive in step), with ``cap`` starting at ``initial`` and growing by ``factor`` up to
    ``maximum``.
    """
    draw = (rng or random).uniform
    cap = initial
    while True:
        yield draw(0, cap)
        cap = min(cap * factor, maximum)
