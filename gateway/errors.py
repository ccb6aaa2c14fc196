"""The one domain error hierarchy.

Transports map these to status codes in one table each (``gateway.api.errors``). Errors carry their
data as attributes so the mapping never parses messages.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GatewayError):
    """The request is malformed; ``field`` names the offending field path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class TooLarge(GatewayError):
    """The request exceeds a size limit (bytes, depth, keys, string length)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class UnknownApplication(InvalidInput):
    def __init__(self, application: str) -> None:
        super().__init__("application", f"unknown application {application!r}")
        self.application = application


class NotFound(GatewayError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident!r} not found")
        self.ident = ident


class Unauthenticated(GatewayError):
    """No credentials, or credentials that do not verify."""


class PermissionDenied(GatewayError):
    """Valid credentials that do not allow this operation."""


class FailedPrecondition(GatewayError):
    """The system is not in a state that allows the operation (paused app, final decision)."""


class Conflict(FailedPrecondition):
    """A concurrent change won (e.g. a decision became final meanwhile)."""


class AlreadyExists(GatewayError):
    """An idempotency key already names a decision made for another request.

    ``key`` is the idempotency key and ``decision_id`` the decision it was first used for: a
    retry must send the same request, and a new request needs a new key.
    """

    def __init__(self, key: str, decision_id: str) -> None:
        super().__init__(
            f"idempotency_key {key!r} was already used for decision {decision_id} with another "
            "request (application, input, subject_ref, labels or requested_by differ); "
            "use a new key for a new request"
        )
        self.key = key
        self.decision_id = decision_id


class ModelUnavailable(GatewayError):
    """The model failed and the policy says reject; the decision exists and is recorded."""

    def __init__(self, message: str, decision_id: str) -> None:
        super().__init__(message)
        self.decision_id = decision_id


class DecisionRefused(PermissionDenied):
    """The decision was rejected (by policy or by people); the caller gets no model output."""

    def __init__(self, message: str, decision_id: str) -> None:
        super().__init__(message)
        self.decision_id = decision_id


class DecisionPending(GatewayError):
    """The decision is still held for review when the caller's wait ended; it can be watched."""

    def __init__(self, message: str, decision_id: str) -> None:
        super().__init__(message)
        self.decision_id = decision_id


class PolicyError(GatewayError):
    """Policies failed to load; ``location`` is ``file:line`` and ``field`` the dotted path."""

    def __init__(self, location: str, field: str, message: str) -> None:
        super().__init__(f"{location}: {field}: {message}" if field else f"{location}: {message}")
        self.location = location
        self.field = field


class RateLimited(GatewayError):
    """Too many attempts (e.g. failed sign-ins); ``retry_after`` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(RateLimited):
    """More decisions are being made in this process than its bound (``max_deciding``): the
    call is shed at once, before any work, with a retry pushback (``retry_after`` seconds)."""


class TooManyCalls(GatewayError):
    """A bound on calls in progress is reached; ``setting`` names it and ``limit`` is its value."""

    def __init__(self, message: str, setting: str, limit: int) -> None:
        super().__init__(message)
        self.setting = setting
        self.limit = limit


class StoreUnavailable(GatewayError):
    """The store could not commit (disk full, database down): nothing of the call was recorded.

    ``what`` names what was not recorded (the decision, the change, the request). Retrying later is
    safe; a Decide retried with the same idempotency key can never make a second decision.
    ``retry_after`` is the least wait, in seconds, before a retry (sent as gRPC's pushback).
    """

    def __init__(self, what: str, message: str = "", retry_after: float = 0.2) -> None:
        super().__init__(
            message
            or f"storage unavailable: {what} was not recorded; "
            "retry later with the same idempotency key"
        )
        self.what = what
        self.retry_after = retry_after


class OutcomeUnknown(StoreUnavailable):
    """The store broke off while committing (its connection dropped during COMMIT): the change
    may or may not have been recorded. A Decide retried with the same idempotency key returns
    the decision if it was, and makes it if it was not."""

    def __init__(self, what: str) -> None:
        super().__init__(
            what,
            f"storage failed while committing: {what} may or may not have been recorded; "
            "a retry with the same idempotency key returns it if it was",
        )
