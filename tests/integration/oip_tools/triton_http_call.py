"""Run in .venv-oip: one infer through the real ``tritonclient.http``; print the outcome as JSON.

Usage: python triton_http_call.py REQUEST_JSON
REQUEST_JSON: {"url", "key", "model", "inputs": {name: {"datatype", "data"}}, "binary",
"headers"}; ``binary`` (default true, tritonclient's own default) sends the tensors in Triton's
binary extension, false as JSON ``data``.
Prints {"ok": true, "live", "ready", "model_ready", "metadata", "outputs": {name: [...]},
"shapes", "response"} or {"ok": false, "status", "message"}.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

_NP = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "BYTES": np.object_}


def main() -> None:
    req = json.loads(sys.argv[1])
    client = triton.InferenceServerClient(req["url"], network_timeout=60.0)
    headers = {"authorization": f"Bearer {req['key']}", **req.get("headers", {})}
    binary = req.get("binary", True)
    inputs = []
    for name, spec in req["inputs"].items():
        data = np.array(spec["data"], dtype=_NP[spec["datatype"]])
        tensor = triton.InferInput(name, list(data.shape), spec["datatype"])
        tensor.set_data_from_numpy(data, binary_data=binary)
        inputs.append(tensor)
    out: dict[str, object]
    try:
        live = client.is_server_live()
        ready = client.is_server_ready()
        model_ready = client.is_model_ready(req["model"], headers=headers)
        metadata = client.get_model_metadata(req["model"], headers=headers)
        result = client.infer(req["model"], inputs, headers=headers)
        response = result.get_response()
        out = {
            "ok": True,
            "live": live,
            "ready": ready,
            "model_ready": model_ready,
            "metadata": metadata,
            "outputs": {
                o["name"]: result.as_numpy(o["name"]).tolist() for o in response["outputs"]
            },
            "shapes": {o["name"]: o["shape"] for o in response["outputs"]},
            "response": response,
        }
    except InferenceServerException as exc:
        out = {"ok": False, "status": exc.status(), "message": exc.message()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
