"""KServe v2 REST JSON (and Triton's binary tensor extension on input) <-> the inference core's
commands and results: the REST counterpart of `gateway.api.inference_converters`."""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.core.inference import InferCommand, InferResult
from gateway.core.limits import InputLimits, requester
from gateway.errors import InvalidInput, TooLarge
from gateway.oip.tensors import INT_RANGES, Element, Tensor, TensorError
from gateway.oip.wire import CONTENTS_FIELD, from_raw
from gateway.policy import OipMapping, TensorSpec

__all__ = ["infer_command", "infer_response", "model_metadata"]

_PARAMS = ("subject_ref", "idempotency_key", "requested_by")
"""Request parameters (strings) the gateway reads, as in the gRPC form."""


def _flatten(value: Any, where: str) -> list[Any]:
    """Row-major elements of nested lists, without recursion."""
    out: list[Any] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            raise InvalidInput(where, "tensor data holds an object")
        else:
            out.append(node)
    return out


def _element(datatype: str, value: Any, where: str) -> Element:
    """A JSON value as an element of ``datatype`` (JSON carries no binary types, so it is
    checked here, where gRPC's typed contents need no check)."""
    if datatype == "BOOL":
        if isinstance(value, bool):
            return value
    elif datatype == "BYTES":
        if isinstance(value, str):
            return value
    elif isinstance(value, bool) or not isinstance(value, int | float):
        pass
    elif datatype in INT_RANGES:
        low, high = INT_RANGES[datatype]
        if isinstance(value, int) and low <= value <= high:
            return value
    elif math.isfinite(value):
        return float(value)
    raise InvalidInput(where, f"{value!r:.40} is not a {datatype} element")


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise InvalidInput(where, "a list of non-negative integers is required")
    return tuple(raw)


def _string_param(params: Any, name: str, limits: InputLimits) -> str:
    if not isinstance(params, dict) or name not in params:
        return ""
    value = params[name]
    if not isinstance(value, str):
        raise InvalidInput(f"parameters.{name}", "must be a string")
    if len(value) > limits.max_id_length:
        raise TooLarge(f"parameters.{name}", f"longer than {limits.max_id_length} characters")
    return value


def _split(body: bytes, header: str | None) -> tuple[Any, bytes]:
    """The JSON head and the binary tail of a request (empty without the extension)."""
    if header is None:
        head, tail = body, b""
    else:
        if not header.isdigit() or int(header) > len(body):
            raise InvalidInput("inference-header-content-length", "does not fit the body")
        head, tail = body[: int(header)], body[int(header) :]
    try:
        return json.loads(head), tail
    except (ValueError, RecursionError):
        raise InvalidInput("body", "not valid JSON") from None


def _tensor(item: Any, where: str, tail: bytes, pos: int) -> tuple[Tensor, int]:
    if not isinstance(item, dict):
        raise InvalidInput(where, "a tensor object is required")
    name, datatype = item.get("name"), item.get("datatype")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name", "required")
    if datatype not in CONTENTS_FIELD:
        raise InvalidInput(f"{where}.datatype", f"unsupported datatype {datatype!r}")
    shape = _shape(item.get("shape"), f"{where}.shape")
    params = item.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or pos + size > len(tail):
            raise InvalidInput(f"{where}.parameters.binary_data_size", "does not fit the body")
        try:
            data: list[Element] = from_raw(datatype, shape, tail[pos : pos + size], where)
        except TensorError as exc:
            raise InvalidInput(exc.field, exc.message) from None
        return Tensor(name, datatype, shape, data), pos + size
    if "data" not in item:
        raise InvalidInput(f"{where}.data", "required")
    data = [_element(datatype, v, f"{where}.data") for v in _flatten(item["data"], where)]
    if len(data) != math.prod(shape):
        raise InvalidInput(
            f"{where}.data",
            f"shape {list(shape)} needs {math.prod(shape)} elements, got {len(data)}",
        )
    return Tensor(name, datatype, shape, data), pos


def infer_command(
    model: str,
    version: str,
    body: bytes,
    header: str | None,
    wait: float,
    limits: InputLimits,
) -> tuple[InferCommand, str]:
    """The core command for an infer request, and the request's ``id``; errors name the
    field."""
    request, tail = _split(body, header)
    if not isinstance(request, dict):
        raise InvalidInput("body", "a JSON object is required")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("inputs", "a non-empty list of tensors is required")
    inputs: dict[str, Tensor] = {}
    elements = 0
    pos = 0
    for i, item in enumerate(raw_inputs):
        where = f"inputs[{i}]"
        tensor, pos = _tensor(item, where, tail, pos)
        if tensor.name in inputs:
            raise InvalidInput(f"{where}.name", f"tensor {tensor.name!r} given twice")
        elements += len(tensor.data)
        if elements > limits.max_keys:
            raise TooLarge(where, f"more than {limits.max_keys} tensor elements in total")
        for element in tensor.data:
            if isinstance(element, str | bytes) and len(element) > limits.max_string:
                raise TooLarge(where, f"BYTES element longer than {limits.max_string}")
        inputs[tensor.name] = tensor
    outputs = request.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInput("outputs", "a list of {name} objects is required")
    ident = request.get("id", "")
    if not isinstance(ident, str) or len(ident) > limits.max_id_length:
        raise InvalidInput("id", f"must be a string of at most {limits.max_id_length} characters")
    params = request.get("parameters")
    subject, key, by = (_string_param(params, n, limits) for n in _PARAMS)
    cmd = InferCommand(
        model_name=model,
        model_version=version,
        inputs=inputs,
        requested_outputs=tuple(o["name"] for o in outputs),
        wait=wait,
        subject_ref=subject,
        idempotency_key=key,
        requested_by=requester(by, "parameters.requested_by", limits),
    )
    return cmd, ident


def _json_element(value: Element) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def infer_response(model: str, ident: str, result: InferResult) -> dict[str, Any]:
    """The JSON answer: each output tensor with its flat ``data``, and the decision's id."""
    return {
        "model_name": model,
        "model_version": result.model_version,
        "id": ident,
        "parameters": {"decision_id": result.decision.id},
        "outputs": [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "data": [_json_element(v) for v in t.data],
            }
            for t in result.outputs
        ],
    }


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def model_metadata(name: str, version: str, mapping: OipMapping) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [version],
        "platform": "hitl-gateway",
        "inputs": [_spec(t) for t in mapping.inputs],
        "outputs": [_spec(t) for t in mapping.outputs],
    }
