"""``Tensor`` <-> the Open Inference Protocol's protobuf tensors (typed contents or raw bytes).

Raw contents are the elements as little-endian bytes in row-major order; BYTES elements are each
prefixed by their length as a 4-byte little-endian integer (the protocol's "raw" encoding, which
Triton clients use by default and expect in answers).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from gateway.oip.tensors import Element, Tensor, TensorError

__all__ = ["CONTENTS_FIELD", "from_raw", "read_tensor", "to_raw", "write_contents"]

CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""Which ``InferTensorContents`` field carries each datatype."""

_STRUCT: dict[str, str] = {
    "BOOL": "?",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
    "FP16": "e",
    "FP32": "f",
    "FP64": "d",
}
_LEN = struct.Struct("<I")


def _count(shape: Sequence[int], where: str) -> int:
    n = 1
    for dim in shape:
        if dim < 0:
            raise TensorError(where, f"shape {list(shape)} has a negative dimension")
        n *= dim
    return n


def from_raw(datatype: str, shape: Sequence[int], raw: bytes, where: str) -> list[Element]:
    """Decode raw contents; raises TensorError when the bytes do not match the shape."""
    count = _count(shape, where)
    if datatype == "BYTES":
        out: list[Element] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise TensorError(where, "truncated BYTES length prefix")
            (size,) = _LEN.unpack_from(raw, pos)
            pos += 4
            if pos + size > len(raw):
                raise TensorError(where, "BYTES element runs past the end of the raw contents")
            out.append(raw[pos : pos + size])
            pos += size
        if len(out) != count:
            raise TensorError(where, f"shape {list(shape)} needs {count} elements, got {len(out)}")
        return out
    code = _STRUCT.get(datatype)
    if code is None:
        raise TensorError(where, f"unsupported datatype {datatype!r}")
    fmt = f"<{count}{code}"
    if struct.calcsize(fmt) != len(raw):
        raise TensorError(
            where,
            f"raw contents hold {len(raw)} bytes; {datatype} {list(shape)} needs "
            f"{struct.calcsize(fmt)}",
        )
    return list(struct.unpack(fmt, raw))


def to_raw(tensor: Tensor) -> bytes:
    """Encode a tensor's elements as raw contents."""
    if tensor.datatype == "BYTES":
        parts: list[bytes] = []
        for item in tensor.data:
            data = item.encode("utf-8") if isinstance(item, str) else bytes(item)  # type: ignore[arg-type]
            parts.append(_LEN.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    code = _STRUCT.get(tensor.datatype)
    if code is None:
        raise TensorError(tensor.name, f"unsupported datatype {tensor.datatype!r}")
    try:
        return struct.pack(f"<{len(tensor.data)}{code}", *tensor.data)
    except struct.error as exc:
        raise TensorError(tensor.name, f"does not fit {tensor.datatype}: {exc}") from None


def read_tensor(message: Any, raw: bytes | None, where: str) -> Tensor:
    """A ``Tensor`` from an input or output tensor message and its raw contents, if any."""
    datatype = message.datatype
    shape = tuple(message.shape)
    if raw is not None:
        data = from_raw(datatype, shape, raw, where)
    else:
        field = CONTENTS_FIELD.get(datatype)
        if field is None:
            raise TensorError(where, f"unsupported datatype {datatype!r}")
        data = list(getattr(message.contents, field))
        if len(data) != _count(shape, where):
            raise TensorError(
                where, f"shape {list(shape)} needs {_count(shape, where)} elements, got {len(data)}"
            )
    return Tensor(message.name, datatype, shape, data)


def write_contents(message: Any, tensor: Tensor) -> None:
    """Fill an input or output tensor message with typed contents."""
    message.name = tensor.name
    message.datatype = tensor.datatype
    message.shape.extend(tensor.shape)
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise TensorError(tensor.name, f"{tensor.datatype} travels only as raw contents")
    values: Sequence[Any] = tensor.data
    if tensor.datatype == "BYTES":
        values = [v.encode("utf-8") if isinstance(v, str) else v for v in tensor.data]
    getattr(message.contents, field).extend(values)
