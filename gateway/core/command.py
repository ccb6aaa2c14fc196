"""What an application asks the pipeline, as the transports hand it over."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.errors import InvalidInput
from gateway.policy import ApplicationPolicy, TierSpec
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


def check_requester(app: ApplicationPolicy, tier: TierSpec, cmd: DecideCommand) -> None:
    """Refuse, before the model is called and before anything is written, a request without
    ``requested_by`` when its tier needs one (maker-checker needs to know the maker)."""
    if tier.require_requester and not cmd.requested_by:
        raise InvalidInput(
            "requested_by",
            f"is required: application {app.id!r} classified this request into tier "
            f"{tier.name!r}, which needs the person on whose behalf it is made",
        )
