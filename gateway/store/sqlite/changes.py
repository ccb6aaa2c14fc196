"""Changes other processes commit to the same SQLite file, heard by polling.

Several worker processes (``serve --workers N``) share one data directory. A caller waiting in
one worker must hear a verdict another worker recorded; SQLite has no change feed, but every
change of a decision appends an audit event, and ``PRAGMA data_version`` tells a connection
cheaply whether any other connection committed since it last looked
(https://www.sqlite.org/pragma.html#pragma_data_version). A thread of its own checks it every
``interval`` (5 ms), and only then reads the events appended since, skipping those this
process's writer committed itself (`OwnCommits`), and hands the decision ids to the event
loop in one call. No protocol of our own: the file is the channel.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger("gateway.store")

_SINCE = "SELECT seq, decision_id FROM audit_events WHERE seq > ? ORDER BY seq"


class OwnCommits:
    """The event seqs this process's writer committed (ranges ``(after, upto]``), so the poller
    does not announce them again. Written on the writer thread, read on the poller's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: list[tuple[int, int]] = []

    def add(self, after: int, upto: int) -> None:
        if upto > after:
            with self._lock:
                self._ranges.append((after, upto))

    def mine(self, seq: int) -> bool:
        with self._lock:
            return any(a < seq <= b for a, b in self._ranges)

    def discard(self, after: int, upto: int) -> None:
        """A range whose transaction rolled back (its seqs may be used by another process)."""
        with self._lock:
            if (after, upto) in self._ranges:
                self._ranges.remove((after, upto))

    def forget_upto(self, seq: int) -> None:
        """Drop ranges wholly at or below ``seq`` (already read past)."""
        with self._lock:
            self._ranges = [(a, b) for a, b in self._ranges if b > seq]


class OtherProcesses:
    """Polls ``path`` for events other processes appended; calls ``on_change(decision_id)`` on
    the loop for each decision they changed.

    Args:
        path: The database file.
        own: This process's commits.
        on_change: Told each changed decision id (on the event loop's thread).
        interval: Seconds between looks at ``data_version``.
    """

    def __init__(
        self,
        path: Path,
        own: OwnCommits,
        on_change: Callable[[str], None],
        *,
        interval: float = 0.005,
    ) -> None:
        self._path = path
        self._own = own
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, after_seq: int) -> None:
        """Announce what is appended after ``after_seq`` from now on."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(after_seq,), name="sqlite-changes", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self, seen: int) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self._stop.wait(self._interval):
                try:
                    now = conn.execute("PRAGMA data_version").fetchone()[0]
                    if now == version:
                        continue
                    version = now
                    seen = self._read(conn, seen)
                except sqlite3.Error as exc:  # a busy or locked file: look again next time
                    log.warning("store.changes_poll_failed", error=str(exc))
        finally:
            conn.close()

    def _read(self, conn: sqlite3.Connection, seen: int) -> int:
        changed: list[str] = []
        last = seen
        for seq, decision_id in conn.execute(_SINCE, (seen,)):
            last = seq
            if decision_id and not self._own.mine(seq) and decision_id not in changed:
                changed.append(decision_id)
        self._own.forget_upto(last)
        if changed and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, changed)
        return last

    def _dispatch(self, changed: list[str]) -> None:
        for decision_id in changed:
            try:
                self._on_change(decision_id)
            except Exception:  # one broken subscriber must not silence the others
                log.exception("store.change_callback_failed", decision_id=decision_id)
