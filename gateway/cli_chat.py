"""What ``hitl-gateway demo`` prints for LLM applications: a ready ``openai`` Python snippet
against the gateway's OpenAI-compatible endpoint."""

from __future__ import annotations

from gateway.policy import PolicySet

__all__ = ["chat_demo_lines"]


def chat_demo_lines(policies: PolicySet, base_url: str, token: str) -> list[str]:
    """Lines showing how to call the first chat application with the ``openai`` client (none
    when no application is offered as a chat model)."""
    apps = [a for a in policies.applications.values() if a.chat is not None]
    if not apps:
        return []
    app = sorted(apps, key=lambda a: a.id)[0]
    assert app.chat is not None
    tool = app.chat.approve_tools[0] if app.chat.approve_tools else ""
    lines = [
        f"LLM application {app.id!r}: any OpenAI client, with only base_url and api_key changed.",
        "A plain answer comes back at once"
        + (f"; a {tool} call waits for a reviewer in the UI:" if tool else ":"),
        "",
        "  python - <<'PY'",
        "  from openai import OpenAI",
        f'  client = OpenAI(base_url="{base_url}/v1", api_key="{token}")',
        f"  answer = client.chat.completions.create(model={app.chat.model_name!r},",
        '      messages=[{"role": "user",',
        '                 "content": "Please transfer 250 to DE89370400440532013000"}],',
    ]
    if tool:
        lines += [
            f'      tools=[{{"type": "function", "function": {{"name": "{tool}",',
            '          "parameters": {"type": "object", "properties": {"to": {"type": "string"},',
            '          "amount": {"type": "number"}}}}}])',
        ]
    else:
        lines[-1] += ")"
    lines += ["  print(answer.choices[0].message)", "  PY", ""]
    return lines
