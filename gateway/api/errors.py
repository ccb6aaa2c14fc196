"""The one table from domain errors to gRPC status codes.

Lookup walks the exception's MRO, so a subclass maps like its nearest listed ancestor.
Unexpected exceptions become INTERNAL with a generic message; their details go to the log only.
"""

from __future__ import annotations

import grpc

from gateway import errors

DECISION_ID_KEY = "x-hitl-decision-id"
"""Trailing metadata key naming the decision a call recorded."""

STATUS: dict[type[BaseException], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ModelUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DecisionPending: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.PolicyError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.TooManyCalls: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
"""gRPC's standard server pushback: clients with a retry policy wait this long."""


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    """The status for a domain error, or None when the error is unexpected."""
    for cls in type(exc).__mro__:
        code = STATUS.get(cls)
        if code is not None:
            return code
    return None


def trailers_for(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """Trailing metadata: the decision an error refers to, or when to retry.

    Every error raised after a decision was recorded carries its id as ``decision_id``
    (ModelUnavailable, DecisionRefused, DecisionPending), and AlreadyExists names the decision
    its idempotency key was first used for.
    """
    if isinstance(exc, errors.RateLimited | errors.StoreUnavailable):
        return ((RETRY_PUSHBACK_KEY, str(max(1, round(exc.retry_after * 1000)))),)
    decision_id = getattr(exc, "decision_id", None)
    if isinstance(decision_id, str) and decision_id:
        return ((DECISION_ID_KEY, decision_id),)
    return ()
