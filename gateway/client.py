"""Clients for business applications: ``AsyncGatewayClient`` and ``GatewayClient``.

Both return typed ``gateway.types.Decision`` objects and raise one exception type,
``GatewayCallError``, which carries the gRPC status and, where the gateway sent one, the decision
id (for example when the model was down and the policy rejected).

    async with AsyncGatewayClient("127.0.0.1:50051", api_key=key) as client:
        decision = await client.decide("credit-limit", {"amount": 5000, ...}, wait=30)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any

import grpc

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.client_retry import RetryPolicy, new_idempotency_key
from gateway.convert.decision import decision_from_pb
from gateway.types import Decision, Status

__all__ = ["AsyncGatewayClient", "GatewayCallError", "GatewayClient", "RetryPolicy"]


class GatewayCallError(Exception):
    """A call the gateway refused or could not complete."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        decision_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.decision_id = decision_id
        """Set when the refusal refers to a recorded decision (e.g. UNAVAILABLE)."""
        self.retry_after = retry_after
        """Seconds the gateway asked the caller to wait before retrying (its pushback)."""

    def retry_wait(self, policy: RetryPolicy, attempt: int) -> float | None:
        """Seconds to wait before retrying after call ``attempt`` failed so, or None."""
        return policy.wait(attempt, self.code, self.decision_id, self.retry_after)


def _error(exc: grpc.RpcError) -> GatewayCallError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    decision_id = ""
    retry_after: float | None = None
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    pairs: Any = trailers or ()  # grpc's stubs type metadata entries loosely
    for key, value in pairs:
        if key == "x-hitl-decision-id":
            decision_id = str(value)
        elif key == "grpc-retry-pushback-ms" and str(value).isdigit():
            retry_after = int(value) / 1000
    return GatewayCallError(code, details or "", decision_id, retry_after)


def _progress(decision: Decision) -> tuple[datetime, int, Status]:
    """What tells one state of a decision from the next (the gateway's own test)."""
    return decision.updated_at, len(decision.reviews), decision.status


class _Watching:
    """One watch across its re-attachments: which messages are new, and whether to attach again.

    The gateway ends a watch after its lifetime with the decision still open; the clients then
    watch again, and the first message of the new stream repeats the state already yielded.
    """

    def __init__(self) -> None:
        self.last: Decision | None = None
        self.received = 0

    def attached(self) -> None:
        self.received = 0

    def new(self, msg: pb.Decision) -> Decision | None:
        """The decision in ``msg`` if it is a state not yielded yet, else None."""
        self.received += 1
        decision = decision_from_pb(msg)
        if self.last is not None and _progress(decision) == _progress(self.last):
            return None
        self.last = decision
        return decision

    def again(self) -> bool:
        """Whether the ended stream should be opened again: the decision is still open. A
        stream that ended without a message is not, so a peer answering nothing cannot make the
        client spin."""
        return self.received > 0 and self.last is not None and not self.last.status.is_final


def _request(
    application: str,
    input: Mapping[str, Any],
    *,
    subject_ref: str,
    idempotency_key: str,
    labels: Mapping[str, str] | None,
    wait: float,
    requested_by: str,
    callback_url: str = "",
) -> pb.DecideRequest:
    req = pb.DecideRequest(
        application=application,
        subject_ref=subject_ref,
        idempotency_key=idempotency_key,
        labels=dict(labels or {}),
        requested_by=requested_by,
        callback_url=callback_url,
    )
    req.input.update(dict(input))
    if wait > 0:
        req.wait.FromNanoseconds(int(wait * 1e9))
    return req


class AsyncGatewayClient:
    """grpc.aio client; use as ``async with`` or call ``close()``."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str,
        channel: grpc.aio.Channel | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.DecisionGatewayStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    async def decide(
        self,
        application: str,
        input: Mapping[str, Any],
        *,
        subject_ref: str = "",
        idempotency_key: str = "",
        labels: Mapping[str, str] | None = None,
        wait: float = 0.0,
        requested_by: str = "",
        callback_url: str = "",
    ) -> Decision:
        """Ask for a decision; with ``wait`` > 0, block up to that long for a human verdict.

        ``requested_by`` names the person on whose behalf the application asks (the loan
        officer, the agent); tiers with ``require_requester`` refuse a request without it.

        When the gateway's store could not commit, the call is retried with the same
        idempotency key (a random one when none is given), so it makes at most one decision;
        see `gateway.client_retry`. A key already used for another request is refused with
        ALREADY_EXISTS (`GatewayCallError.decision_id` names the first decision).
        """
        req = _request(
            application,
            input,
            subject_ref=subject_ref,
            idempotency_key=idempotency_key or new_idempotency_key(),
            labels=labels,
            wait=wait,
            requested_by=requested_by,
            callback_url=callback_url,
        )
        attempt = 1
        while True:
            try:
                msg = await self._stub.Decide(
                    req, metadata=self._metadata, timeout=self._timeout + wait
                )
            except grpc.RpcError as exc:
                error = _error(exc)
                delay = error.retry_wait(self._retry, attempt)
                if delay is None:
                    raise error from None
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return decision_from_pb(msg)

    async def get(self, decision_id: str) -> Decision:
        try:
            msg = await self._stub.GetDecision(
                pb.GetDecisionRequest(decision_id=decision_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    async def watch(self, decision_id: str) -> AsyncIterator[Decision]:
        """The current state, then each change, ending after a final state.

        The gateway ends a watch after its ``watch_max_seconds``, or when it shuts down, with
        the decision still open: this then watches again, without repeating a state.
        """
        request = pb.WatchDecisionRequest(decision_id=decision_id)
        watching = _Watching()
        while True:
            watching.attached()
            call = self._stub.WatchDecision(request, metadata=self._metadata)
            try:
                async for msg in call:
                    if (decision := watching.new(msg)) is not None:
                        yield decision
            except grpc.RpcError as exc:
                raise _error(exc) from None
            if not watching.again():
                return

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class GatewayClient:
    """Blocking client for code that does not run an event loop."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.DecisionGatewayStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    def decide(
        self,
        application: str,
        input: Mapping[str, Any],
        *,
        subject_ref: str = "",
        idempotency_key: str = "",
        labels: Mapping[str, str] | None = None,
        wait: float = 0.0,
        requested_by: str = "",
        callback_url: str = "",
    ) -> Decision:
        """Like `AsyncGatewayClient.decide`, retries included."""
        req = _request(
            application,
            input,
            subject_ref=subject_ref,
            idempotency_key=idempotency_key or new_idempotency_key(),
            labels=labels,
            wait=wait,
            requested_by=requested_by,
            callback_url=callback_url,
        )
        attempt = 1
        while True:
            try:
                msg = self._stub.Decide(req, metadata=self._metadata, timeout=self._timeout + wait)
            except grpc.RpcError as exc:
                error = _error(exc)
                delay = error.retry_wait(self._retry, attempt)
                if delay is None:
                    raise error from None
                time.sleep(delay)
                attempt += 1
                continue
            return decision_from_pb(msg)

    def get(self, decision_id: str) -> Decision:
        try:
            msg = self._stub.GetDecision(
                pb.GetDecisionRequest(decision_id=decision_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    def watch(self, decision_id: str) -> Iterator[Decision]:
        """As `AsyncGatewayClient.watch`: re-attaches when the gateway ends a watch early."""
        request = pb.WatchDecisionRequest(decision_id=decision_id)
        watching = _Watching()
        while True:
            watching.attached()
            call = self._stub.WatchDecision(request, metadata=self._metadata)
            try:
                for msg in call:
                    if (decision := watching.new(msg)) is not None:
                        yield decision
            except grpc.RpcError as exc:
                raise _error(exc) from None
            if not watching.again():
                return

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
