"""The ``chat:`` section of an application and the chat-related checks of its backend: how it
is offered to OpenAI-compatible clients (``/v1/chat/completions``) and which tool calls people
must approve."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.policy.fields import Duration, Name, StrictModel, Text
from gateway.policy.fields import policy_error as _error

__all__ = ["CHAT_ROLES", "ChatModel", "check_chat_send_fields", "check_target_url"]

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
"""Message roles of the OpenAI chat format."""


class ChatModel(StrictModel):
    """How an application speaks the OpenAI chat completions API to its callers."""

    model_name: Name
    """The ``model`` callers name in ``/v1/chat/completions`` to reach this application."""
    approve_tools: list[Name] = Field(default_factory=list)
    """Tools whose calls a person must approve: an answer calling one is held for review,
    whatever the route rules say."""
    max_wait: Duration | None = None
    """Longest a held call waits for a reviewer before the pending answer; unset: the
    gateway's limit."""

    @model_validator(mode="after")
    def _unique_tools(self) -> ChatModel:
        seen: set[str] = set()
        for i, name in enumerate(self.approve_tools):
            if name in seen:
                raise _error(f"tool {name!r} is listed twice", ("approve_tools", i))
            seen.add(name)
        return self


def check_chat_send_fields(send_fields: list[str]) -> None:
    """An ``openai`` backend's ``send_fields`` name message roles (``messages.user``) and
    ``tools``: the parts of a conversation that may leave."""
    allowed = {"tools", *(f"messages.{role}" for role in CHAT_ROLES)}
    for i, name in enumerate(send_fields):
        if name not in allowed:
            raise _error(
                f"an openai backend sends parts of a conversation: {name!r} is not one of "
                f"{', '.join(sorted(allowed))}",
                ("send_fields", i),
            )


def check_target_url(target: Text | None, tls: bool) -> None:
    """An ``openai`` backend's target is the base URL its API lives under; ``tls: true`` (with
    an optional private ``tls_ca``) needs an https one."""
    if target is None or not target.startswith(("http://", "https://")):
        raise _error(
            "an openai backend needs a target URL (http://host:port/v1 or https://…)",
            ("target",),
        )
    if tls and not target.startswith("https://"):
        raise _error("tls: true needs an https:// target", ("target",))
