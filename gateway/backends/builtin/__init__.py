"""In-process demo models (credit, fraud, marketing) and test models, served by ``BuiltinBackend``.

Model catalogue and scorecards: :mod:`gateway.backends.builtin.models`; test-only models:
:mod:`gateway.backends.builtin.testing`.
"""

from __future__ import annotations

from gateway.backends.builtin.backend import MODEL_NAMES, BuiltinBackend

__all__ = ["MODEL_NAMES", "BuiltinBackend"]
