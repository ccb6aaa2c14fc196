"""What an application asks the pipeline, as the transports hand it over."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.types import JSONObject


@dataclass(frozen=True, slots=True)
class DecideCommand:
    application: str
    input: JSONObject
    subject_ref: str = ""
    idempotency_key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0
    """Seconds to block for a human verdict when the decision is held."""
    requested_by: str = ""
    """The person on whose behalf the application asks (the transport has validated it)."""
