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


class Refresh:
    """Sent to `subscribe_all` subscribers when changes may have been missed (a replica's
    change feed came back after an outage): read everything again."""

    __slots__ = ()


REFRESH = Refresh()
AnyChange = Decision | Refresh | None
"""What `subscribe_all` subscribers receive."""


class Notifier:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Change]]] = {}
        self._everything: set[asyncio.Queue[AnyChange]] = set()
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
    def subscribe_all(self, maxsize: int = 1000) -> Iterator[asyncio.Queue[AnyChange]]:
        """Receive every published change (live queue pages); a full queue drops changes."""
        queue: asyncio.Queue[AnyChange] = asyncio.Queue(maxsize)
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
        for page in self._everything:
            if not page.full():  # a slow page misses changes, it never grows memory
                page.put_nowait(decision)

    def refresh_all(self) -> None:
        """Tell `subscribe_all` subscribers that changes may have gone unseen."""
        for queue in self._everything:
            if not queue.full():  # a full queue already makes its reader catch up
                queue.put_nowait(REFRESH)

    def close(self) -> None:
        """Wake every waiter with None so in-flight calls answer before shutdown."""
        self._closed = True
        for subs in self._subscribers.values():
            for queue in subs:
                queue.put_nowait(None)
        for page in self._everything:
            if page.full():
                page.get_nowait()
            page.put_nowait(None)

    def listening(self, decision_id: str) -> bool:
        """Whether a change of ``decision_id`` published now would reach anyone here: a waiter
        on it, or a subscriber to every change. Every subscriber reads the current state after
        subscribing, so a change nobody here listens to need not be fetched at all."""
        return decision_id in self._subscribers or bool(self._everything)

    def waited_on(self) -> list[str]:
        """Ids of the decisions someone here is waiting on (to re-read after missed changes)."""
        return list(self._subscribers)

    def waiting(self) -> int:
        """Number of live subscriptions (for metrics and shutdown)."""
        return sum(len(s) for s in self._subscribers.values())
