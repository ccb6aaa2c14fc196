"""Bounds on calls in progress: a share per key, one for all keys, one for unauthenticated streams.

A call holds its slots while it runs, however long: a ``WatchDecision`` stream on a held
decision, or a ``Decide`` waiting for a verdict, may last minutes. One key can therefore hold at
most ``per_key`` slots, so it cannot take the ``total`` that every key shares, and another
application keeps being served while one is at its share. Unauthenticated streams (health
``Watch``, reflection) have a bound of their own, so nobody without a key can take the slots of
those with one. Health checks and other unauthenticated unary calls hold no slot: they answer at
once, and they must answer while the application calls are at a bound.

Counts live in memory per replica, like the rate limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gateway.errors import TooManyCalls


class CallSlots:
    def __init__(self, total: int = 2048, per_key: int = 256, public_streams: int = 256) -> None:
        """``total``: calls in progress for all keys together (``max_concurrent_rpcs``);
        ``per_key``: for one key (``max_calls_per_key``); ``public_streams``: unauthenticated
        streams (``max_public_streams``)."""
        if min(total, per_key, public_streams) < 1:
            raise ValueError("every bound on calls in progress must be at least 1")
        self._total = total
        self._per_key = per_key
        self._public_streams = public_streams
        self._calls = 0
        self._public = 0
        self._by_key: dict[str, int] = {}

    @contextmanager
    def call(self) -> Iterator[None]:
        """Hold one of the slots all keys share, from before authentication to the call's end,
        so that calls with bad keys count too."""
        if self._calls >= self._total:
            raise TooManyCalls(
                f"the gateway has {self._calls} calls in progress, its bound "
                f"(max_concurrent_rpcs={self._total}); retry later",
                "max_concurrent_rpcs",
                self._total,
            )
        self._calls += 1
        try:
            yield
        finally:
            self._calls -= 1

    @contextmanager
    def key(self, key_id: str) -> Iterator[None]:
        """Hold one of ``key_id``'s own slots until the call ends."""
        held = self._by_key.get(key_id, 0)
        if held >= self._per_key:
            raise TooManyCalls(
                f"key {key_id} has {held} calls in progress, the most one key may have "
                f"(max_calls_per_key={self._per_key}); end a watch or wait for a call to finish",
                "max_calls_per_key",
                self._per_key,
            )
        self._by_key[key_id] = held + 1
        try:
            yield
        finally:
            left = self._by_key[key_id] - 1
            if left:
                self._by_key[key_id] = left
            else:  # keys with nothing in progress take no memory
                del self._by_key[key_id]

    @contextmanager
    def public_stream(self) -> Iterator[None]:
        """Hold one of the slots of unauthenticated streams (health ``Watch``, reflection)."""
        if self._public >= self._public_streams:
            raise TooManyCalls(
                f"{self._public} unauthenticated streams are open, the bound "
                f"(max_public_streams={self._public_streams}); use Health/Check or retry later",
                "max_public_streams",
                self._public_streams,
            )
        self._public += 1
        try:
            yield
        finally:
            self._public -= 1

    def in_progress(self, key_id: str) -> int:
        """Calls ``key_id`` has in progress."""
        return self._by_key.get(key_id, 0)
