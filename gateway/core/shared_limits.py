"""The rate limit and the sign-in throttle shared by the worker processes of one gateway.

``serve --workers N`` forks N processes behind one port; the kernel gives each connection to
one of them, so a client holding one HTTP/2 connection talks to one worker and a client opening
many talks to all. Per-process buckets would give the first a fraction of its rate and the
second N times it. These tables are the same buckets in one anonymous shared memory mapping the
supervisor creates before forking, under one lock: no store round trip on the hot path, and no
protocol of our own. Time is ``time.monotonic`` (CLOCK_MONOTONIC: one clock for every process of
the host).

Each table is a fixed array of records found by open addressing on a 64-bit digest of the key;
a full neighbourhood gives up its least recently touched record (a key idle long enough to be
dropped had refilled its bucket, or had its sign-in window pass, anyway).
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import struct
import time
from collections.abc import Callable
from typing import Any

from gateway.core.ratelimit import RateLimiter
from gateway.errors import RateLimited

_PROBES = 32
"""Records looked at for one key before the least recently touched is reused."""


def _digest(key: str) -> int:
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1  # 0 marks an empty record


class _Table:
    """``slots`` records of ``(digest: u64, touched: f64, *fields: f64)`` in ``memory``."""

    def __init__(self, memory: mmap.mmap, offset: int, slots: int, fields: int) -> None:
        self._mem = memory
        self._offset = offset
        self._slots = slots
        self._format = struct.Struct(f"<Qd{fields}d")
        self.size = slots * self._format.size

    def find(self, key: str, now: float) -> tuple[int, tuple[float, ...] | None]:
        """The record index for ``key`` and its fields (None: a new record)."""
        digest = _digest(key)
        start = digest % self._slots
        oldest, oldest_at = start, float("inf")
        for i in range(_PROBES):
            index = (start + i) % self._slots
            found, touched, *fields = self._format.unpack_from(self._mem, self._at(index))
            if found == digest:
                return index, tuple(fields)
            if found == 0:
                return index, None
            if touched < oldest_at:
                oldest, oldest_at = index, touched
        return oldest, None

    def store(self, index: int, key: str, now: float, fields: tuple[float, ...]) -> None:
        self._format.pack_into(self._mem, self._at(index), _digest(key), now, *fields)

    def _at(self, index: int) -> int:
        return self._offset + index * self._format.size


class SharedLimits:
    """The mapping and lock both tables live in; create before forking the workers."""

    def __init__(self, slots: int = 65_536, attempts: int = 5) -> None:
        ctx = multiprocessing.get_context("fork")
        self.lock: Any = ctx.Lock()
        self.attempts = attempts
        rate = struct.calcsize("<Qd2d") * slots
        signin = struct.calcsize(f"<Qd{attempts + 1}d") * slots
        self._memory = mmap.mmap(-1, rate + signin)  # anonymous, shared with forked children
        self.rate_table = _Table(self._memory, 0, slots, 2)
        self.signin_table = _Table(self._memory, rate, slots, attempts + 1)


class SharedRateLimiter:
    """`gateway.core.ratelimit.RateLimiter` over `SharedLimits`: ``rate`` tokens a second up to
    ``burst`` per key, for all workers together."""

    def __init__(
        self,
        shared: SharedLimits,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._shared = shared
        self._table = shared.rate_table
        self._rate = rate
        self._burst = burst
        self._clock = clock

    def acquire(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited with the seconds until the next one."""
        now = self._clock()
        with self._shared.lock:
            index, fields = self._table.find(key, now)
            if fields is None:
                tokens = self._burst
            else:
                tokens, updated = fields
                tokens = min(self._burst, tokens + (now - updated) * self._rate)
            allowed = tokens >= 1.0 - 1e-9  # tolerate float error in the refill
            self._table.store(index, key, now, (tokens - 1.0 if allowed else tokens, now))
        if not allowed:
            wait = (1.0 - tokens) / self._rate
            raise RateLimited(f"rate limit for {key} exceeded; retry in {wait:.2f}s", wait)


class SharedLoginThrottle:
    """`gateway.core.accounts.LoginThrottle` over `SharedLimits`: at most ``attempts`` password
    checks that did not succeed per key in ``window`` seconds, for all workers together."""

    def __init__(
        self,
        shared: SharedLimits,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._table = shared.signin_table
        self._attempts = shared.attempts
        self._window = window
        self._clock = clock

    def _live(self, fields: tuple[float, ...] | None, now: float) -> list[float]:
        if fields is None:
            return []
        count = int(fields[0])
        return [t for t in fields[1 : 1 + count] if t > now - self._window]

    def _save(self, index: int, key: str, now: float, times: list[float]) -> None:
        padded = times + [0.0] * (self._attempts - len(times))
        self._table.store(index, key, now, (float(len(times)), *padded))

    def reserve(self, *keys: str) -> float:
        """Take one attempt of each of ``keys``; the stamp gives it back (`release`).

        Raises:
            RateLimited: A key has used up its attempts; nothing was taken.
        """
        now = self._clock()
        with self._shared.lock:
            found = [(key, *self._table.find(key, now)) for key in keys]
            for _, _, fields in found:
                times = self._live(fields, now)
                if len(times) >= self._attempts:
                    wait = times[0] + self._window - now
                    raise RateLimited(
                        f"too many failed sign-ins; try again in {int(wait) + 1} s",
                        retry_after=wait,
                    )
            for key in keys:  # one at a time: two keys may land on the same free record
                index, fields = self._table.find(key, now)
                self._save(index, key, now, [*self._live(fields, now), now])
        return now

    def release(self, stamp: float, *keys: str) -> None:
        """Give back the attempt `reserve` took at ``stamp`` (its password was right)."""
        now = self._clock()
        with self._shared.lock:
            for key in keys:
                index, fields = self._table.find(key, now)
                times = self._live(fields, now)
                if stamp in times:
                    times.remove(stamp)
                    self._save(index, key, now, times)


def rate_limiter(
    shared: SharedLimits | None, rate: float, burst: float
) -> RateLimiter | SharedRateLimiter:
    """The per-key rate limit: over ``shared`` for worker processes, else this process's own."""
    if shared is None:
        return RateLimiter(rate, burst)
    return SharedRateLimiter(shared, rate, burst)
