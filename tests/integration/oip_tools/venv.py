"""The separate virtual environment for the real Open Inference Protocol server and client.

``tritonclient`` pins ``protobuf<7`` while the gateway needs protobuf 7, so Seldon MLServer and
tritonclient live in their own environment, ``.venv-oip/`` in the repository root. It is created
on first use and reused while its marker file names exactly these requirements.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv-oip"
REQUIREMENTS = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "scikit-learn==1.9.1",
    "tritonclient[grpc]==2.73.0",
)
"""The versions tested together."""
_MARKER = VENV / ".complete"


def python() -> Path:
    return VENV / "bin" / "python"


def ensure() -> Path:
    """Create or reuse the environment; return its python. Raises CalledProcessError."""
    wanted = "\n".join(REQUIREMENTS)
    if _MARKER.exists() and _MARKER.read_text() == wanted and python().exists():
        return python()
    started = time.monotonic()
    if VENV.exists():
        subprocess.run(["rm", "-rf", str(VENV)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True, env=env
    )
    _MARKER.write_text(wanted)
    print(f"created {VENV} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return python()
