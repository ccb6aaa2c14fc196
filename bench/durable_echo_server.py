"""The bare echo server (`bench.echo_server`) that also commits one row per call before it
answers: the floor for any Python service that answers only after a durable write.

Each ``Decide`` serialises its answer (about 1 KB) and hands it to one writer thread, which
commits everything queued in one SQLite transaction (WAL, ``synchronous=FULL``: the group
commit) and then completes the whole batch's futures with one wake-up of the event loop. The
call answers after its row is committed.

Run: ``python -m bench.durable_echo_server --port 50098 --db /tmp/echo.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import grpc

from bench import echo_server
from bench.harness import run_async
from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb

_Item = tuple[bytes, asyncio.Future[None]]


class GroupCommitWriter:
    """One thread committing queued rows in batches, waking the loop once per batch."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
        )
        self._thread = threading.Thread(target=self._run, name="echo-writer", daemon=True)
        self._thread.start()

    def write(self, body: bytes) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((body, done))
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
        self._conn.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._commit(batch)
                    return
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        error: Exception | None = None
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO answers (body) VALUES (?)", [(b,) for b, _ in batch]
            )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = exc
        self._loop.call_soon_threadsafe(_complete, batch, error)


def _complete(batch: list[_Item], error: Exception | None) -> None:
    for _, done in batch:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)


class DurableEchoServicer(echo_server.EchoServicer):
    def __init__(self, writer: GroupCommitWriter) -> None:
        super().__init__()
        self._writer = writer

    async def Decide(
        self, request: pb.DecideRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Decision:
        msg = await super().Decide(request, context)
        await self._writer.write(msg.SerializeToString())
        return msg


async def serve(host: str, port: int, db: Path) -> int:
    writer = GroupCommitWriter(db, asyncio.get_running_loop())
    try:
        return await echo_server.serve(host, port, DurableEchoServicer(writer))
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args(argv)
    return int(run_async(serve(args.host, args.port, args.db)))


if __name__ == "__main__":
    raise SystemExit(main())
