"""Admission control: a bound on decisions being made at once in this process.

Past saturation a server that queues every call makes every call slow: the latency of all
grows with each caller added. One that refuses the excess at once keeps the latency of the
calls it admits bounded and lets the excess retry elsewhere or later. So a decision takes a
slot before any work (before its input is checked, its model called or anything recorded) and
gives it back once it is recorded, before it waits for people: a caller waiting minutes for a
verdict costs no CPU and must not keep others out. A call over the bound gets
RESOURCE_EXHAUSTED with gRPC's ``grpc-retry-pushback-ms``.
"""

from __future__ import annotations

from prometheus_client import Counter

from gateway.errors import Overloaded
from gateway.telemetry.metrics import REGISTRY

SHED = Counter(
    "hitl_decisions_shed",
    "Decide calls refused at once because this process was making its bound of decisions "
    "(max_deciding)",
    registry=REGISTRY,
)


class Slot:
    """One admitted decision's slot; `release` is idempotent."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission | None) -> None:
        self._admission = admission

    def release(self) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            admission.in_flight -= 1


class Admission:
    """At most ``limit`` decisions in the making at once (0: no bound).

    Args:
        limit: The bound (``max_deciding``).
        retry_after: Seconds a shed caller is asked to wait before retrying.
    """

    def __init__(self, limit: int = 0, retry_after: float = 0.05) -> None:
        if limit < 0:
            raise ValueError("max_deciding must not be negative")
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0

    def enter(self) -> Slot:
        """A slot, or `Overloaded` at once when none is free."""
        if self.limit and self.in_flight >= self.limit:
            SHED.inc()
            raise Overloaded(
                f"the gateway is making {self.in_flight} decisions, its bound "
                f"(max_deciding={self.limit}); retry after the pushback",
                self.retry_after,
            )
        self.in_flight += 1
        return Slot(self)
