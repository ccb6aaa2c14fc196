"""Run in .venv-oip: train a small scikit-learn model and serve it with Seldon MLServer.

Usage: python serve_model.py MODEL_DIR GRPC_PORT HTTP_PORT [REPORTED_VERSION]

With REPORTED_VERSION, the model is still found as version 1 but answers (and describes itself)
as that version (`misreporting_runtime`).

The model is a linear score of two features, ``score = 0.5 * x1 + 0.4 * x2``, fitted exactly on
four points, so tests know each answer. Nothing is downloaded: MLServer loads the file we wrote.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression


def main() -> None:
    model_dir, grpc_port, http_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    scorer = model_dir / "scorer"
    scorer.mkdir(parents=True, exist_ok=True)
    if not (scorer / "model.joblib").exists():
        x = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
        joblib.dump(LinearRegression().fit(x, x @ np.array([0.5, 0.4])), scorer / "model.joblib")
    settings: dict[str, object] = {
        "name": "scorer",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    if len(sys.argv) > 4:
        reported = sys.argv[4]
        settings["implementation"] = "misreporting_runtime.MisreportingSKLearnModel"
        settings["versions"] = [reported]
        settings["parameters"] = {
            "uri": "./model.joblib",
            "version": "1",
            "extra": {"reported_version": reported},
        }
        os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent)
    (scorer / "model-settings.json").write_text(json.dumps(settings))
    server = {
        "host": "127.0.0.1",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "load_models_at_startup": True,
    }
    (model_dir / "settings.json").write_text(json.dumps(server))
    mlserver = Path(sys.executable).parent / "mlserver"
    os.chdir(model_dir)
    os.execv(str(mlserver), [str(mlserver), "start", str(model_dir)])


if __name__ == "__main__":
    main()
