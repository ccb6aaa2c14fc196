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
