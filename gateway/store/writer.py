"""The one group-commit writer both stores write through.

Every change goes through one writer task per store. Callers put a job on a queue and await its
future; the writer takes everything queued (up to ``max_batch``), applies it in one
transaction, commits, and only then answers each caller. Under load one commit (one fsync)
covers hundreds of decisions; at low load a batch is a single job and nothing waits for a timer.

When a batch fails it is rolled back and replayed one job per savepoint, so one bad job fails
alone and leaves nothing half-written, and the good ones still commit together. A batch whose
COMMIT broke off is not replayed: it may stand already, and its callers are told the outcome is
unknown (`gateway.store.failures`).

What differs by database is only how a batch is applied: a dialect supplies a `Session` of small
primitives (begin, apply the jobs, savepoint, commit, roll back), and `run_batch` is the one
place that orders them, replay included. The primitives are coroutines on both dialects, but
the SQLite ones never suspend: its whole batch runs on its dedicated writer thread with the
stdlib ``sqlite3`` (one thread hop per batch, see `gateway.store.sqlite.store`), and that thread
drives `run_batch` to its end with `drive`, without an event loop. So the replay logic is
written once, PostgreSQL awaits it on the event loop as any coroutine, and SQLite keeps one hop
per batch. (The alternatives were a second, synchronous copy of the replay for SQLite, which is
the duplication this module removes, or one hop per statement, which costs 30-40% more CPU
per decision with aiosqlite: ``python -m bench.store_bench``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from gateway.audit.drafts import PreparedDraft
from gateway.errors import GatewayError
from gateway.store import failures
from gateway.store.tx import Tx
from gateway.types import Decision

T = TypeVar("T")
TxT = TypeVar("TxT", bound=Tx[Any])


class StoreClosed(GatewayError):
    """The store is not running (not started yet, or stopped)."""


@dataclass(slots=True)
class StoreStats:
    """Counters of the writer, for tests, benchmarks and metrics."""

    transactions: int = 0
    """Write transactions committed."""
    jobs: int = 0
    """Write calls answered (successfully or not)."""
    batches: int = 0
    """Batches taken from the queue."""
    isolated_replays: int = 0
    """Batches that failed as a whole and were replayed one job per savepoint."""
    largest_batch: int = 0


@dataclass(slots=True)
class Create:
    """A new decision with its prepared audit events and task rows (applied in bulk)."""

    decision: Decision
    row: tuple[Any, ...]
    drafts: list[PreparedDraft]
    tasks: list[tuple[Any, ...]]
    fut: asyncio.Future[Any]

    @property
    def key(self) -> tuple[str, str] | None:
        d = self.decision
        return (d.application, d.idempotency_key) if d.idempotency_key else None


@dataclass(slots=True)
class Call:
    """A write composed by the store, run inside the batch's transaction.

    ``fn(tx)`` returns the caller's result, or an exception instance to raise to the caller
    (decided before it writes anything); raising makes the batch replay in isolation. On SQLite
    ``fn`` is a plain function of a `gateway.store.tx.SQLiteTx`, on PostgreSQL a coroutine
    function of a `gateway.store.tx.PostgresTx`.
    """

    fn: Callable[[Any], Any]
    fut: asyncio.Future[Any]


Job = Create | Call


class Session(Protocol[TxT]):
    """How one dialect applies a batch inside one transaction."""

    async def begin(self) -> TxT:
        """Open the transaction, take the chain's write lock and read its head."""

    async def apply_creates(self, tx: TxT, jobs: list[Create]) -> list[Any]:
        """Insert a run of new decisions (see `plan_creates`); one outcome per job."""

    async def call(self, tx: TxT, fn: Callable[[Any], Any]) -> Any:
        """Run one `Call` job's function."""

    async def savepoint(self, tx: TxT) -> None: ...

    async def release(self, tx: TxT) -> None: ...

    async def rollback_to(self, tx: TxT) -> None:
        """Undo the work since the savepoint, and end it."""

    async def before_commit(self, tx: TxT) -> None:
        """Work that must ride in the transaction after every job (PostgreSQL's NOTIFY)."""

    async def commit(self, tx: TxT) -> None: ...

    async def rollback(self, tx: TxT | None) -> None:
        """Roll back whatever is open; never raises."""

    def committed(self, head: tuple[int, str]) -> None:
        """The transaction that ended at chain ``head`` committed."""


async def run_batch(session: Session[TxT], batch: list[Job], stats: StoreStats) -> list[Any]:
    """Apply ``batch`` in one transaction; one outcome (result or exception) per job."""
    tx: TxT | None = None
    committing = False
    try:
        tx = await session.begin()
        outcomes = await _apply(session, tx, batch)
        await session.before_commit(tx)
        committing = True
        await session.commit(tx)
    except Exception as exc:
        await session.rollback(tx)
        failed = failures.failed_batch(exc, committing=committing)
        if len(batch) == 1 or isinstance(failed, failures.LostAtCommit):
            return [failed] * len(batch)
    else:
        stats.transactions += 1
        session.committed(tx.head)
        return outcomes
    return await _run_isolated(session, batch, stats)


async def _run_isolated(session: Session[TxT], batch: list[Job], stats: StoreStats) -> list[Any]:
    """Replay a failed batch one job per savepoint, so only the bad jobs fail."""
    stats.isolated_replays += 1
    tx: TxT | None = None
    committing = False
    try:
        tx = await session.begin()
        outcomes: list[Any] = []
        for job in batch:
            mark = tx.mark()
            await session.savepoint(tx)
            try:
                outcomes.extend(await _apply(session, tx, [job]))
            except Exception as exc:
                await session.rollback_to(tx)
                tx.undo(mark)
                outcomes.append(exc)
            else:
                await session.release(tx)
        await session.before_commit(tx)
        committing = True
        await session.commit(tx)
    except Exception as exc:
        await session.rollback(tx)
        return [failures.failed_batch(exc, committing=committing)] * len(batch)
    stats.transactions += 1
    session.committed(tx.head)
    return outcomes


async def _apply(session: Session[TxT], tx: TxT, batch: Sequence[Job]) -> list[Any]:
    """Apply jobs in order, runs of creates in bulk. Raises on unexpected SQL errors."""
    outcomes: list[Any] = []
    i = 0
    while i < len(batch):
        job = batch[i]
        if isinstance(job, Create):
            j = i + 1
            while j < len(batch) and isinstance(batch[j], Create):
                j += 1
            creates: list[Create] = batch[i:j]  # type: ignore[assignment]
            outcomes.extend(await session.apply_creates(tx, creates))
            i = j
            continue
        outcomes.append(await session.call(tx, job.fn))
        i += 1
    return outcomes


@dataclass(slots=True)
class CreatePlan:
    """What a run of creates writes, once the decisions their keys already name are known."""

    outcomes: list[Any]
    decisions: list[tuple[Any, ...]]
    drafts: list[PreparedDraft]
    tasks: list[tuple[Any, ...]]
    queued: list[str]
    """Ids of new decisions that wait for review (announced to other replicas)."""
    callbacks: list[tuple[str, str]]
    """``(decision id, url)`` of new decisions with a per-request webhook URL."""


def plan_creates(jobs: list[Create], existing: dict[tuple[str, str], Decision]) -> CreatePlan:
    """Skip the jobs whose idempotency key names a stored decision (or one earlier in the run:
    ``existing`` is extended as the run goes), and gather the rows of the rest."""
    plan = CreatePlan([], [], [], [], [], [])
    for job in jobs:
        key = job.key
        if key is not None:
            found = existing.get(key)
            if found is not None:
                plan.outcomes.append((found, False))
                continue
            existing[key] = job.decision  # a later job of this batch with the key gets it
        plan.outcomes.append((job.decision, True))
        plan.decisions.append(job.row)
        plan.drafts.extend(job.drafts)
        plan.tasks.extend(job.tasks)
        if job.tasks:
            plan.queued.append(job.decision.id)
        if job.decision.callback_url:
            plan.callbacks.append((job.decision.id, job.decision.callback_url))
    return plan


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, on the calling thread, with no loop.

    Raises:
        RuntimeError: The coroutine suspended (awaited something that is not already done);
            it is closed first.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a synchronous store session suspended")


_STOP = object()


class GroupWriter:
    """The queue and the task that commits it in batches (see the module docstring).

    Args:
        run: Applies one batch in one transaction (`run_batch` on the dialect's session, on
            whatever thread the dialect needs); one outcome per job, never raises.
        max_batch: Most jobs committed in one transaction.
        name: The store, in task names and `StoreClosed` messages.
    """

    def __init__(
        self, run: Callable[[list[Job]], Awaitable[list[Any]]], *, max_batch: int, name: str
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.max_batch = max_batch
        self.stats = StoreStats()
        self._run = run
        self._name = name
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        """The writer task while it runs."""
        self._running = False
        self._stopped = False

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self.task = asyncio.create_task(self._write_loop(), name=f"{self._name}-writer")
        self.task.add_done_callback(self._writer_done)
        self._running = True

    async def stop(self) -> None:
        """Commit everything queued, then end the task."""
        self._running = False
        self._stopped = True
        if self.task is not None:
            self._queue.put_nowait(_STOP)
            # wait() rather than await: a writer cancelled from outside must not stop the close.
            await asyncio.wait([self.task])
            self.task = None

    @property
    def running(self) -> bool:
        return self._running

    def check(self) -> None:
        """Raise `StoreClosed` unless writes are taken."""
        if not self._running:
            state = "stopped" if self._stopped else "not started"
            raise StoreClosed(f"{self._name} is {state}")

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and return its outcome once its transaction committed."""
        self.check()
        self._queue.put_nowait(job)
        return await job.fut

    async def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(tx)`` in the next transaction; see `Call`."""
        self.check()
        return await self.submit(Call(fn, asyncio.get_running_loop().create_future()))

    async def _write_loop(self) -> None:
        queue = self._queue
        batch: list[Job] = []
        stop = False
        try:
            while not stop:
                first = await queue.get()
                if first is _STOP:
                    break
                batch = [first]
                while len(batch) < self.max_batch and not queue.empty():
                    job = queue.get_nowait()
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)
                try:
                    outcomes = await self._run(batch)
                except Exception as exc:  # run answers every job; this is a last resort
                    outcomes = [exc] * len(batch)
                self.stats.batches += 1
                self.stats.jobs += len(batch)
                self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
                for job, outcome in zip(batch, outcomes, strict=True):
                    if job.fut.done():  # the caller was cancelled; the write stands
                        continue
                    if isinstance(outcome, BaseException):
                        what = "the decision" if isinstance(job, Create) else "the change"
                        job.fut.set_exception(failures.for_caller(outcome, what))
                    else:
                        job.fut.set_result(outcome)
                batch = []
        finally:
            # Left early only if this task was cancelled from outside mid-batch.
            lost = StoreClosed(f"{self._name} writer stopped; the outcome of this write is unknown")
            for job in batch:
                if not job.fut.done():
                    job.fut.set_exception(lost)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """Answer every queued caller once the writer has ended, however it ended.

        A callback rather than a ``finally``: a task cancelled before its first step never
        runs its body at all.
        """
        self._running = False
        closed = StoreClosed(f"{self._name} writer stopped before this write was taken")
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not _STOP and not job.fut.done():
                job.fut.set_exception(closed)
