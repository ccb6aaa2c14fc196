"""``hitl-gateway serve --workers N``: N processes serving the same ports and the same data.

One Python process uses one core for its own code. The workers are forked from this
supervisor, each a whole gateway on the same gRPC and HTTP ports (``SO_REUSEPORT``: the kernel
spreads connections over them) and the same store. What must behave as one gateway lives where
every worker sees it: decisions, kill switches, the model inventory, the policy in force, UI
sessions and review leases in the store (followed as replicas follow a PostgreSQL store; on a
shared SQLite file a worker hears another's changes by `gateway.store.sqlite.changes`).

The supervisor binds each port once first (ports of 0 are chosen then), starts the first worker
alone (it applies migrations and creates the keys), then the others; a worker that dies is
started again while the others keep serving; SIGTERM and SIGINT stop them all, SIGHUP is passed
to each (each applies the policy directory; the store keeps one version).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.synchronize import Event as EventType
from typing import Any

import structlog

from gateway.config import Settings
from gateway.core.shared_limits import SharedLimits

log = structlog.get_logger("gateway.workers")

Serve = Callable[[Settings, Callable[[], None], SharedLimits], int]
"""A worker's body: serves until SIGTERM, calling the second argument once it serves."""

RESTART_PAUSE = 1.0
"""Seconds between restarts of a worker that keeps dying, so a crash loop does not spin."""


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket bound (not listening) to ``host:port`` with ``SO_REUSEPORT``: it picks the port
    when ``port`` is 0 and keeps it for the workers, and as it never listens it takes no
    connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, int(sock.getsockname()[1])


class Supervisor:
    """Runs ``serve(settings, ready, limits)`` in ``workers`` forked processes (see the module
    docstring); ``limits`` are the rate limit and sign-in tables all workers share.

    Args:
        settings: With the number of workers; ports of 0 are chosen here.
        serve: A worker's body: serves until SIGTERM, calling ``ready()`` once it serves.
    """

    def __init__(self, settings: Settings, serve: Serve) -> None:
        self._serve = serve
        # Before any fork: every worker maps the same tables (`gateway.core.shared_limits`).
        self._limits = SharedLimits()
        self._reserved: list[socket.socket] = []
        grpc_sock, grpc_port = reserve_port(settings.grpc_host, settings.grpc_port)
        http_sock, http_port = reserve_port(settings.http_host, settings.http_port)
        self._reserved = [grpc_sock, http_sock]
        self.settings = replace(settings, grpc_port=grpc_port, http_port=http_port)
        self._ctx = multiprocessing.get_context("fork")
        self._procs: list[Any] = []
        self._stopping = False

    def _start(self, index: int) -> tuple[Any, EventType]:
        ready = self._ctx.Event()
        proc = self._ctx.Process(
            target=_worker,
            args=(self._serve, self.settings, ready, self._limits),
            name=f"hitl-worker-{index}",
        )
        proc.start()
        return proc, ready

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status."""
        n = self.settings.workers
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        signal.signal(signal.SIGHUP, self._forward)
        first, ready = self._start(0)
        self._procs = [first]
        while not ready.wait(0.1):
            if not first.is_alive():
                print(f"hitl-gateway: worker 0 exited with {first.exitcode}", file=sys.stderr)
                return 1
            if self._stopping:
                break
        for index in range(1, n):
            if self._stopping:
                break
            self._procs.append(self._start(index)[0])
        s = self.settings
        print(
            f"hitl-gateway serving gRPC on {s.grpc_host}:{s.grpc_port}, HTTP on "
            f"{s.http_host}:{s.http_port} with {n} workers",
            file=sys.stderr,
            flush=True,
        )
        last_restart = 0.0
        while not self._stopping:
            time.sleep(0.2)
            for index, proc in enumerate(self._procs):
                if proc.is_alive() or self._stopping:
                    continue
                log.error("workers.worker_died", worker=index, exit_code=proc.exitcode)
                time.sleep(max(0.0, RESTART_PAUSE - (time.monotonic() - last_restart)))
                last_restart = time.monotonic()
                self._procs[index] = self._start(index)[0]
        for proc in self._procs:
            proc.join(self.settings.shutdown_grace + 10)
            if proc.is_alive():
                proc.kill()
        for sock in self._reserved:
            sock.close()
        return 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = True
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    def _forward(self, signum: int, _frame: object) -> None:
        for proc in self._procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signum)


def _worker(serve: Serve, settings: Settings, ready: EventType, limits: SharedLimits) -> None:
    # The supervisor's handlers were inherited by the fork: a worker stops on its own signals.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    raise SystemExit(serve(settings, ready.set, limits))
