"""The body of ``POST /v1/chat/completions``, validated: every refusal names the parameter.

Unknown parameters are refused rather than ignored: a caller that sets one expects it to act,
and a gateway that silently dropped it would answer differently from the model server. The
accepted set is what an OpenAI-compatible model server commonly honours.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.chat.shape import FORWARDED_PARAMS
from gateway.types import JSONObject

__all__ = ["ChatRequest", "RequestError", "parse_request"]

_Str = Annotated[str, Field(max_length=65_536)]
_Id = Annotated[str, Field(min_length=1, max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Part(_Strict):
    type: Literal["text"]
    text: _Str


class _Function(_Strict):
    name: _Id
    arguments: _Str


class _ToolCall(_Strict):
    id: _Id
    type: Literal["function"] = "function"
    function: _Function


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: _Str | list[_Part] | None = None
    name: _Id | None = None
    tool_calls: list[_ToolCall] | None = Field(default=None, max_length=128)
    tool_call_id: _Id | None = None
    refusal: _Str | None = None

    @model_validator(mode="after")
    def _by_role(self) -> Message:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs tool_call_id")
        if self.role != "assistant" and self.tool_calls is not None:
            raise ValueError("only an assistant message has tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError("content is required")
        return self


class _FunctionSpec(_Strict):
    name: _Id
    description: _Str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: _FunctionSpec


class _StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    model: _Id
    messages: list[Message] = Field(min_length=1, max_length=1024)
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    n: Literal[1] = 1
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: _Str | list[_Str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    user: _Id | None = None
    metadata: dict[_Id, _Str] | None = Field(default=None, max_length=16)

    def decision_input(self) -> JSONObject:
        """The decision's input (`gateway.chat.shape`): everything but transport details."""
        data = self.model_dump(mode="json", exclude_none=True)
        out: JSONObject = {"messages": data["messages"]}
        for name in ("tools", *FORWARDED_PARAMS, "user", "metadata"):
            if name in data:
                out[name] = data[name]
        return out


class RequestError(ValueError):
    """A bad request body; ``param`` names the parameter as OpenAI does (``messages[0].role``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}" if param else message)
        self.param = param
        self.message = message


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in _TYPE_TAGS and "[" not in part and "-" not in part:
            # Union branches appear in the location as type names; they name no parameter.
            out += f".{part}" if out else part
    return out


def parse_request(body: bytes) -> ChatRequest:
    """The validated request, or RequestError naming the first bad parameter."""
    try:
        request = ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(error.get("loc", ()))
        if error["type"] == "json_invalid":
            raise RequestError("", "the body is not valid JSON") from None
        if error["type"] == "extra_forbidden":
            raise RequestError(_param(loc), "unsupported parameter") from None
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        raise RequestError(_param(loc), message) from None
    for i, tool in enumerate(request.tools or ()):
        if _depth(tool.function.parameters) > MAX_DEPTH:
            raise RequestError(f"tools[{i}].function.parameters", "nested too deeply")
    if _depth(request.response_format) > MAX_DEPTH or _depth(request.tool_choice) > MAX_DEPTH:
        raise RequestError("response_format", "nested too deeply")
    return request


MAX_DEPTH = 16
"""Deepest nesting of a free-form object (a tool's JSON Schema), as for a decision's input."""


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile value cannot exhaust the
    stack)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                return deepest
            todo.extend((child, depth + 1) for child in node)
    return deepest
