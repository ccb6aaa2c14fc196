"""Run in .venv-oip: one ModelInfer through the real tritonclient; print the outcome as JSON.

Usage: python triton_call.py REQUEST_JSON
REQUEST_JSON: {"url", "key", "model", "inputs": {name: {"datatype", "data"}}, "timeout"}
Prints {"ok": true, "outputs": {name: [...]}, "shapes": {...}}
or {"ok": false, "status", "message"}.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

_NP = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "BYTES": np.object_}


def main() -> None:
    req = json.loads(sys.argv[1])
    client = triton.InferenceServerClient(req["url"])
    headers = {"authorization": f"Bearer {req['key']}"} if req.get("key") else None
    inputs = []
    for name, spec in req["inputs"].items():
        data = np.array(spec["data"], dtype=_NP[spec["datatype"]])
        tensor = triton.InferInput(name, list(data.shape), spec["datatype"])
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    out: dict[str, object]
    try:
        live = client.is_server_live()
        result = client.infer(
            req["model"], inputs, headers=headers, client_timeout=req.get("timeout")
        )
        response = result.get_response()
        out = {
            "ok": True,
            "live": live,
            "model_name": response.model_name,
            "outputs": {o.name: result.as_numpy(o.name).tolist() for o in response.outputs},
            "shapes": {o.name: list(o.shape) for o in response.outputs},
        }
    except InferenceServerException as exc:
        out = {"ok": False, "status": exc.status(), "message": exc.message()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
