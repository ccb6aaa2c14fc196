"""In-process notification of decision changes.

Waiters (Decide with ``wait``, WatchDecision, later the reviewer UI) subscribe by decision id and
are woken by the change itself, never by polling. A scale-out store feeds changes made on other
replicas into the same ``publish``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.types import Decision

Change = Decision | None
"""A published decision, or None: the gateway is shutting down, stop waiting."""


class Notifier:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Change]]] = {}
        self._everything: set[asyncio.Queue[Change]] = set()
        self._closed = False

    @contextmanager
    def subscribe(self, decision_id: str) -> Iterator[asyncio.Queue[Change]]:
        """Receive every published change of one decision while the block runs."""
        queue: asyncio.Queue[Change] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.setdefault(decision_id, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._subscribers.get(decision_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[decision_id]

    @contextmanager
    def subscribe_all(self, maxsize: int = 1000) -> Iterator[asyncio.Queue[Change]]:
        """Receive every published change (live queue pages); a full queue drops changes."""
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize)
        if self._closed:
            queue.put_nowait(None)
        self._everything.add(queue)
        try:
            yield queue
        finally:
            self._everything.discard(queue)

    def publish(self, decision: Decision) -> None:
        for queue in self._subscribers.get(decision.id, ()):
            queue.put_nowait(decision)
        for queue in self._everything:
            if not queue.full():  # a slow page misses changes, it never grows memory
                queue.put_nowait(decision)

    def close(self) -> None:
        """Wake every waiter with None so in-flight calls answer before shutdown."""
        self._closed = True
        for subs in self._subscribers.values():
            for queue in subs:
                queue.put_nowait(None)
        for queue in self._everything:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    def waited_on(self) -> list[str]:
        """Ids of the decisions someone here is waiting on (to re-read after missed changes)."""
        return list(self._subscribers)

    def waiting(self) -> int:
        """Number of live subscriptions (for metrics and shutdown)."""
        return sum(len(s) for s in self._subscribers.values())
