"""The ``chat:`` section and ``kind: openai`` backends: loaded, compiled and refused by field."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import BACKENDS, WritePolicies

from gateway.errors import PolicyError
from gateway.policy import load_policies
from gateway.types import Action, ModelRef

CHAT_BACKENDS = (
    BACKENDS
    + """\
  - {name: llm, kind: openai, target: "http://llm:8000/v1", model: m, version: "1",
     api_key_env: LLM_KEY}
"""
)
CHAT_APP = """\
applications:
  - id: assistant
    tier: limited
    backend: llm
    route:
      - {when: "true", action: approve}
    chat: {model_name: assist-model, approve_tools: [transfer_funds], max_wait: 2m}
"""


def _error(directory: Path) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policies(directory)
    return caught.value


def _output(*tools: str) -> dict[str, object]:
    calls = [
        {"id": "c", "type": "function", "function": {"name": t, "arguments": "{}"}} for t in tools
    ]
    return {"content": "", "finish_reason": "stop", "tool_calls": calls}


def test_chat_application_loads_with_its_tool_rule_first(write_policies: WritePolicies) -> None:
    """``approve_tools`` holds a call of a listed tool before the application's own rules."""
    policies = load_policies(write_policies(backends=CHAT_BACKENDS, applications=CHAT_APP))
    app = policies.application_for_chat_model("assist-model")
    assert app.chat is not None
    assert (app.chat.approve_tools, app.chat.max_wait) == (("transfer_funds",), 120.0)
    assert app.backend.api_key_env == "LLM_KEY"
    tier = app.base_tier
    ref = ModelRef("llm", "m", "1")
    held = app.route({}, _output("lookup", "transfer_funds"), tier, {}, ref)
    assert (held.action, held.rule) == (Action.REVIEW, "route:approve_tools")
    assert app.route({}, _output("lookup"), tier, {}, ref).action is Action.APPROVE
    assert app.route({}, _output(), tier, {}, ref).action is Action.APPROVE


@pytest.mark.parametrize(
    ("backends", "apps", "field", "words"),
    [
        (
            CHAT_BACKENDS.replace('target: "http://llm:8000/v1"', 'target: "llm:8000"'),
            CHAT_APP,
            "backends[2].target",
            "target URL",
        ),
        (
            CHAT_BACKENDS.replace("api_key_env: LLM_KEY", "third_party: true, send_fields: [x]"),
            CHAT_APP,
            "backends[2].send_fields[0]",
            "parts of a conversation",
        ),
        (
            CHAT_BACKENDS.replace("api_key_env: LLM_KEY", "tls: true"),
            CHAT_APP,
            "backends[2].target",
            "https",
        ),
        (
            CHAT_BACKENDS.replace("api_key_env: LLM_KEY", "third_party: true"),
            CHAT_APP,
            "backends[2].send_fields",
            "must list send_fields",
        ),
        (
            CHAT_BACKENDS,
            CHAT_APP.replace(
                "    chat: {model_name: assist-model, approve_tools: "
                "[transfer_funds], max_wait: 2m}\n",
                "",
            ),
            "applications[0].backend",
            "chat section",
        ),
        (
            CHAT_BACKENDS,
            CHAT_APP.replace("[transfer_funds]", "[a, a]"),
            "applications[0].chat.approve_tools[1]",
            "listed twice",
        ),
        (
            BACKENDS.replace('version: "3"}', 'version: "3", api_key_env: K}', 1),
            CHAT_APP.replace("backend: llm", "backend: scorer"),
            "backends[0].api_key_env",
            "only an openai backend",
        ),
    ],
)
def test_bad_chat_policies_name_the_field(
    write_policies: WritePolicies, backends: str, apps: str, field: str, words: str
) -> None:
    """Each mistake in a chat policy is refused with the field that holds it."""
    error = _error(write_policies(backends=backends, applications=apps))
    assert error.field == field, error
    assert words in error.message


def test_two_applications_cannot_share_a_chat_model_name(write_policies: WritePolicies) -> None:
    """A chat model name picks exactly one application."""
    second = CHAT_APP.split("\n", 1)[1].replace("id: assistant", "id: other")
    error = _error(write_policies(backends=CHAT_BACKENDS, applications=CHAT_APP + second))
    assert error.field == "applications[0].chat.model_name"
    assert "more than one application" in error.message
