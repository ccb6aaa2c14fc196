"""Open Inference Protocol messages <-> the inference core's commands and results.

Requests may carry tensors as typed contents or as raw bytes; answers always use raw output
contents, as Triton does and as ``tritonclient`` expects (it reads numeric outputs only from
``raw_output_contents``).
"""

from __future__ import annotations

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway.core.inference import InferCommand, InferResult
from gateway.core.limits import InputLimits, requester
from gateway.errors import InvalidInput, TooLarge
from gateway.oip.tensors import Tensor, TensorError
from gateway.oip.wire import read_tensor, to_raw
from gateway.policy import OipMapping, TensorSpec

__all__ = ["infer_command", "infer_response", "model_metadata"]

SUBJECT_REF = "subject_ref"
"""Request parameter (string) recorded as the decision's subject reference."""
IDEMPOTENCY_KEY = "idempotency_key"
"""Request parameter (string): a retried request with the same key gets the same decision; the
key used again for other tensors or parameters is refused with ALREADY_EXISTS."""
REQUESTED_BY = "requested_by"
"""Request parameter (string): the person on whose behalf the caller asks, as in ``Decide``."""


def _string_param(request: pb.ModelInferRequest, name: str, limits: InputLimits) -> str:
    if name not in request.parameters:
        return ""
    param = request.parameters[name]
    if param.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput(f"parameters[{name}]", "must be a string_param")
    if len(param.string_param) > limits.max_id_length:
        raise TooLarge(f"parameters[{name}]", f"longer than {limits.max_id_length} characters")
    return param.string_param


def infer_command(request: pb.ModelInferRequest, wait: float, limits: InputLimits) -> InferCommand:
    """The core command for a ModelInfer request; errors name the offending field."""
    if not request.model_name:
        raise InvalidInput("model_name", "required")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            "raw_input_contents",
            f"{len(raw)} entries for {len(request.inputs)} inputs; give one per input or none",
        )
    inputs: dict[str, Tensor] = {}
    elements = 0
    for i, message in enumerate(request.inputs):
        where = f"inputs[{i}]"
        if message.name in inputs:
            raise InvalidInput(f"{where}.name", f"tensor {message.name!r} given twice")
        try:
            tensor = read_tensor(message, raw[i] if raw else None, where)
        except TensorError as exc:
            raise InvalidInput(exc.field, exc.message) from None
        elements += len(tensor.data)
        if elements > limits.max_keys:
            raise TooLarge(where, f"more than {limits.max_keys} tensor elements in total")
        for item in tensor.data:
            if isinstance(item, bytes) and len(item) > limits.max_string:
                raise TooLarge(where, f"BYTES element longer than {limits.max_string}")
        inputs[message.name] = tensor
    return InferCommand(
        model_name=request.model_name,
        model_version=request.model_version,
        inputs=inputs,
        requested_outputs=tuple(o.name for o in request.outputs),
        wait=wait,
        subject_ref=_string_param(request, SUBJECT_REF, limits),
        idempotency_key=_string_param(request, IDEMPOTENCY_KEY, limits),
        requested_by=requester(
            _string_param(request, REQUESTED_BY, limits), f"parameters[{REQUESTED_BY}]", limits
        ),
    )


def infer_response(request: pb.ModelInferRequest, result: InferResult) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=request.model_name, model_version=result.model_version, id=request.id
    )
    for tensor in result.outputs:
        out = response.outputs.add()
        out.name = tensor.name
        out.datatype = tensor.datatype
        out.shape.extend(tensor.shape)
        response.raw_output_contents.append(to_raw(tensor))
    return response


def _tensor_metadata(
    spec: TensorSpec,
) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=spec.datatype, shape=list(spec.shape)
    )


def model_metadata(name: str, version: str, mapping: OipMapping) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(
        name=name,
        versions=[version],
        platform="hitl-gateway",
        inputs=[_tensor_metadata(t) for t in mapping.inputs],
        outputs=[_tensor_metadata(t) for t in mapping.outputs],
    )
