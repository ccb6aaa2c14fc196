"""gRPC servicer for hitl.gateway.v1.DecisionGateway: convert, call the pipeline, convert back.

Only ``app`` keys may call it: auditor and admin keys read the audit trail, never decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import grpc

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.api import converters
from gateway.api.handlers import streaming_handler, unary_handler
from gateway.core.auth import APP_ROLES, KeyAuthenticator, Principal
from gateway.core.limits import InputLimits
from gateway.core.pipeline import DecisionPipeline

SERVICE = "hitl.gateway.v1.DecisionGateway"
# Answer a held decision this long before the caller's deadline, so the caller gets the
# decision id (PENDING_REVIEW) instead of DEADLINE_EXCEEDED.
_DEADLINE_MARGIN = 0.05


class DecisionGatewayServicer:
    def __init__(
        self,
        pipeline: DecisionPipeline,
        limits: InputLimits,
        *,
        watch_lifetime: float | None = None,
    ) -> None:
        """``watch_lifetime``: seconds after which a WatchDecision stream ends, still open
        (``watch_max_seconds``); None: it lasts until the decision is final."""
        self._pipeline = pipeline
        self._limits = limits
        self._watch_lifetime = watch_lifetime

    async def decide(
        self,
        request: pb.DecideRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.Decision:
        cmd = converters.decide_command(request, self._limits)
        remaining = context.time_remaining()
        if cmd.wait > 0 and remaining is not None:
            cmd = replace(cmd, wait=min(cmd.wait, max(remaining - _DEADLINE_MARGIN, 0.0)))
        decision = await self._pipeline.decide(cmd, principal)
        return converters.decision_to_pb(decision)

    async def get_decision(
        self,
        request: pb.GetDecisionRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.Decision:
        decision_id = converters.decision_id(request.decision_id)
        return converters.decision_to_pb(await self._pipeline.get(decision_id, principal))

    async def watch_decision(
        self,
        request: pb.WatchDecisionRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.Decision]:
        decision_id = converters.decision_id(request.decision_id)
        # A watch holds one of its key's call slots: bound how long, so a watch on a decision
        # nobody reviews ends (with OK, the decision still open) and the client watches again.
        # Only the wait for the next change is cut off, never a message being sent.
        loop = asyncio.get_running_loop()
        until = None if self._watch_lifetime is None else loop.time() + self._watch_lifetime
        async with aclosing(self._pipeline.watch(decision_id, principal)) as updates:
            while True:
                lifetime = asyncio.timeout_at(until)
                try:
                    async with lifetime:
                        decision = await anext(updates)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if lifetime.expired():
                        return
                    raise
                yield converters.decision_to_pb(decision)

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Decide": unary_handler(
                    f"{SERVICE}/Decide", self.decide, auth, pb.DecideRequest, APP_ROLES
                ),
                "GetDecision": unary_handler(
                    f"{SERVICE}/GetDecision",
                    self.get_decision,
                    auth,
                    pb.GetDecisionRequest,
                    APP_ROLES,
                ),
                "WatchDecision": streaming_handler(
                    f"{SERVICE}/WatchDecision",
                    self.watch_decision,
                    auth,
                    pb.WatchDecisionRequest,
                    APP_ROLES,
                ),
            },
        )
