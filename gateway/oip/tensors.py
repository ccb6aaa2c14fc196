"""Fields of a JSON object <-> named Open Inference Protocol tensors, by an application's mapping.

A tensor here is its name, datatype, shape and a flat row-major list of elements; the wire
encoding (typed contents or raw little-endian bytes) is ``gateway.oip.wire``'s job.

One mapping (``TensorSpec``) serves both directions: a JSON object becomes the tensors a model
server expects (``encode``), and tensors become the JSON object policies see (``decode``). A
``field`` holds the whole tensor: a scalar when the spec's shape holds exactly one element,
otherwise a flat list. ``fields`` spreads the elements over several scalar fields, in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.policy import TensorSpec
from gateway.types import JSONObject

__all__ = ["INT_RANGES", "Tensor", "TensorError", "decode", "encode", "project"]

Element = bool | int | float | str | bytes

INT_RANGES: dict[str, tuple[int, int]] = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FLOATS = frozenset({"FP16", "FP32", "FP64"})


class TensorError(ValueError):
    """A value does not fit its tensor; ``field`` names the JSON field or the tensor."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Sequence[Element]
    """Elements in row-major order."""


def _get(obj: JSONObject, path: str) -> Any:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            raise TensorError(path, "missing")
        current = current[part]
    return current


def _put(obj: JSONObject, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    current = obj
    for part in parents:
        current = current.setdefault(part, {})
        if not isinstance(current, dict):
            raise TensorError(path, f"{part!r} is mapped both as a value and as an object")
    current[last] = value


def _flatten(value: Any, out: list[Any], depth: int = 0) -> None:
    if isinstance(value, list):
        if depth > 32:
            raise TensorError("", "nested too deeply")
        for item in value:
            _flatten(item, out, depth + 1)
    else:
        out.append(value)


def _check(datatype: str, value: Any, where: str) -> Element:
    """``value`` as an element of ``datatype``, or TensorError naming ``where``."""
    if datatype == "BOOL":
        if isinstance(value, bool):
            return bool(value)
        raise TensorError(where, f"expected a boolean for BOOL, got {type(value).__name__}")
    if datatype == "BYTES":
        if isinstance(value, str | bytes):
            return value
        raise TensorError(where, f"expected a string for BYTES, got {type(value).__name__}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TensorError(where, f"expected a number for {datatype}, got {type(value).__name__}")
    if datatype in _FLOATS:
        if not math.isfinite(value):
            raise TensorError(where, "NaN and infinity are not accepted")
        return float(value)
    bounds = INT_RANGES.get(datatype)
    if bounds is None:
        raise TensorError(where, f"unsupported datatype {datatype!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise TensorError(where, f"expected an integer for {datatype}, got {value!r}")
        value = int(value)
    if not bounds[0] <= value <= bounds[1]:
        raise TensorError(where, f"{value} is out of range for {datatype}")
    return int(value)


def resolve_shape(shape: Sequence[int], count: int, where: str) -> tuple[int, ...]:
    """The spec's shape with its -1 dimension filled in so that it holds ``count`` elements."""
    fixed = 1
    for dim in shape:
        if dim != -1:
            fixed *= dim
    if -1 in shape:
        if fixed == 0 or count % fixed:
            raise TensorError(where, f"{count} elements do not fit shape {list(shape)}")
        return tuple(count // fixed if d == -1 else d for d in shape)
    if fixed != count:
        raise TensorError(where, f"shape {list(shape)} holds {fixed} elements, got {count}")
    return tuple(shape)


def _is_scalar(spec: TensorSpec) -> bool:
    return -1 not in spec.shape and math.prod(spec.shape) == 1


def encode(obj: JSONObject, specs: Iterable[TensorSpec]) -> list[Tensor]:
    """The tensors ``specs`` describe, filled from the fields of ``obj``.

    Raises TensorError naming the field that is missing or does not fit.
    """
    tensors: list[Tensor] = []
    for spec in specs:
        data: list[Element] = []
        if spec.fields is not None:
            for path in spec.fields:
                data.append(_check(spec.datatype, _get(obj, path), path))
            where = spec.fields[0]
        else:
            assert spec.field is not None
            where = spec.field
            raw: list[Any] = []
            _flatten(_get(obj, where), raw)
            data = [_check(spec.datatype, v, where) for v in raw]
        shape = resolve_shape(spec.shape, len(data), where)
        tensors.append(Tensor(spec.name, spec.datatype, shape, data))
    return tensors


def _shape_fits(spec: TensorSpec, shape: Sequence[int]) -> bool:
    if len(spec.shape) != len(shape):
        return False
    return all(want in (-1, got) for want, got in zip(spec.shape, shape, strict=True))


def decode(
    tensors: Mapping[str, Tensor], specs: Iterable[TensorSpec], *, strict: bool
) -> JSONObject:
    """The JSON object whose fields ``specs`` fill from ``tensors`` (by tensor name).

    ``strict`` (tensors sent by a caller) also requires each tensor's declared datatype and a
    shape that fits the spec; the answers of a model server are taken with the datatype and shape
    the server chose. Raises TensorError naming the tensor.
    """
    out: JSONObject = {}
    for spec in specs:
        tensor = tensors.get(spec.name)
        if tensor is None:
            raise TensorError(spec.name, "tensor missing")
        if strict and tensor.datatype != spec.datatype:
            raise TensorError(
                spec.name, f"expected datatype {spec.datatype}, got {tensor.datatype}"
            )
        if strict and not _shape_fits(spec, tensor.shape):
            raise TensorError(
                spec.name, f"expected shape {list(spec.shape)}, got {list(tensor.shape)}"
            )
        values = [_json_value(v, spec.name, strict) for v in tensor.data]
        if spec.fields is not None:
            if len(values) != len(spec.fields):
                raise TensorError(
                    spec.name, f"{len(values)} elements for {len(spec.fields)} fields"
                )
            for path, value in zip(spec.fields, values, strict=True):
                _put(out, path, value)
        else:
            assert spec.field is not None
            if _is_scalar(spec):
                if len(values) != 1:
                    raise TensorError(spec.name, f"expected one element, got {len(values)}")
                _put(out, spec.field, values[0])
            else:
                _put(out, spec.field, values)
    return out


def _json_value(value: Element, where: str, strict: bool) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TensorError(where, "BYTES element is not UTF-8 text") from None
    # A model's NaN is kept: the pipeline sees it and fails closed. A caller's is refused.
    if strict and isinstance(value, float) and not math.isfinite(value):
        raise TensorError(where, "NaN and infinity are not accepted")
    return value


def project(obj: JSONObject, paths: Iterable[str]) -> JSONObject:
    """Only the fields at ``paths`` (dotted) of ``obj``: what may leave for a third party."""
    out: JSONObject = {}
    for path in paths:
        try:
            value = _get(obj, path)
        except TensorError:
            continue
        _put(out, path, value)
    return out
