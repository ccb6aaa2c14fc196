"""The committed generated protobuf code matches the .proto sources."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_current(tmp_path: Path) -> None:
    """Regenerating gateway/_pb from proto/ produces exactly the committed files."""
    out = tmp_path / "_pb"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        [str(ROOT / "scripts" / "generate-protos.sh"), str(out)], cwd=ROOT, env=env, check=True
    )
    committed = ROOT / "gateway" / "_pb"
    assert _files(out) == _files(committed)
    _, mismatch, errors = filecmp.cmpfiles(out, committed, sorted(_files(out)), shallow=False)
    assert mismatch == [] and errors == [], f"stale generated code: {mismatch or errors}"
