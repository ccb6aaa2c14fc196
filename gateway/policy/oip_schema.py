"""The ``oip:`` section of an application: how its fields map to Open Inference Protocol
tensors, for its backend and for its callers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.policy.fields import FieldPath, Name, StrictModel
from gateway.policy.fields import policy_error as _error

DataType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP32",
    "FP64",
    "BYTES",
]
"""Open Inference Protocol tensor datatypes the gateway maps (FP16 has no JSON counterpart)."""


class TensorModel(StrictModel):
    """One named tensor and the field (or fields, in order) of the JSON object it carries."""

    name: Name
    datatype: DataType
    shape: list[Annotated[int, Field(ge=-1)]] = Field(default_factory=lambda: [-1], min_length=1)
    field: FieldPath | None = None
    fields: list[FieldPath] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> TensorModel:
        if (self.field is None) == (self.fields is None):
            raise _error("give exactly one of field or fields", ("field",))
        if 0 in self.shape:
            raise _error("a dimension is -1 (variable) or positive", ("shape",))
        if self.shape.count(-1) > 1:
            raise _error("at most one dimension may be -1 (variable)", ("shape",))
        size = 1
        for dim in self.shape:
            size *= abs(dim)
        if self.fields is not None and -1 not in self.shape and size != len(self.fields):
            raise _error(
                f"shape {self.shape} holds {size} elements but {len(self.fields)} fields are "
                "listed",
                ("shape",),
            )
        return self


class OipModel(StrictModel):
    """How an application speaks the Open Inference Protocol (to its backend and its callers)."""

    model_name: Name
    """The model name callers of the gateway's inference service use for this application."""
    inputs: list[TensorModel] = Field(min_length=1)
    outputs: list[TensorModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> OipModel:
        for section in ("inputs", "outputs"):
            tensors: list[TensorModel] = getattr(self, section)
            seen: set[str] = set()
            for i, tensor in enumerate(tensors):
                if tensor.name in seen:
                    raise _error(f"tensor {tensor.name!r} is listed twice", (section, i, "name"))
                seen.add(tensor.name)
        return self
