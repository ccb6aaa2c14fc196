"""Decision ids: time-ordered so that new rows land at the end of the primary-key index."""

from __future__ import annotations

import os
import time


def new_decision_id() -> str:
    """48 bits of milliseconds since the epoch, then 80 random bits, as 32 hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
