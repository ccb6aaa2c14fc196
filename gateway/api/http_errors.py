"""The one table from domain errors to HTTP status codes, for the HTTP APIs (OpenAI-compatible
chat, Open Inference Protocol REST).

Lookup walks the exception's MRO, as the gRPC table does (`gateway.api.errors`). Each API writes
its own body (OpenAI's ``{"error": {...}}``, KServe's ``{"error": "..."}``); the status, the
error code and the headers come from here. Unexpected exceptions are not in the table: the
caller answers 500 with a generic message and logs them.

A held decision is not an error: ``DecisionPending`` is 202 Accepted (nothing released yet; the
decision id names what to follow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway import errors
from gateway.api.errors import DECISION_ID_KEY

__all__ = ["HttpError", "headers_for", "http_error_for"]


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    code: str
    """A stable, machine-readable name for the condition."""


TABLE: dict[type[BaseException], HttpError] = {
    errors.InvalidInput: HttpError(400, "invalid_value"),
    errors.TooLarge: HttpError(413, "too_large"),
    errors.NotFound: HttpError(404, "model_not_found"),
    errors.AlreadyExists: HttpError(409, "idempotency_key_reused"),
    errors.Unauthenticated: HttpError(401, "invalid_api_key"),
    errors.DecisionRefused: HttpError(403, "decision_rejected"),
    errors.PermissionDenied: HttpError(403, "permission_denied"),
    # 422, not 409: OpenAI clients retry 409, and a paused application stays paused.
    errors.FailedPrecondition: HttpError(422, "failed_precondition"),
    errors.PolicyError: HttpError(422, "failed_precondition"),
    errors.ModelUnavailable: HttpError(503, "model_unavailable"),
    errors.StoreUnavailable: HttpError(503, "store_unavailable"),
    errors.DecisionPending: HttpError(202, "decision_pending"),
    errors.RateLimited: HttpError(429, "rate_limited"),
    errors.TooManyCalls: HttpError(429, "too_many_calls"),
}


def http_error_for(exc: BaseException) -> HttpError | None:
    """The status and code for a domain error, or None when the error is unexpected."""
    for cls in type(exc).__mro__:
        mapped = TABLE.get(cls)
        if mapped is not None:
            return mapped
    return None


def headers_for(exc: BaseException) -> dict[str, str]:
    """``x-hitl-decision-id`` for an error about a recorded decision; ``retry-after`` (whole
    seconds, at least 1) when a retry later may succeed."""
    headers: dict[str, str] = {}
    decision_id = getattr(exc, "decision_id", None)
    if isinstance(decision_id, str) and decision_id:
        headers[DECISION_ID_KEY] = decision_id
    if isinstance(exc, errors.RateLimited | errors.StoreUnavailable):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    return headers
