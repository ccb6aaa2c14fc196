"""Masking of sensitive fields (dotted paths from the policy) before data leaves the core."""

from __future__ import annotations

from typing import Any

MASK = "***"


def mask(data: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted path that exists replaced by ``***``.

    Only the dicts on the way to a masked field are copied; ``data`` is never changed.
    """
    if not paths:
        return data
    out = dict(data)
    for path in paths:
        _mask_path(out, path.split("."))
    return out


def _mask_path(node: dict[str, Any], parts: list[str]) -> None:
    head = parts[0]
    if head not in node:
        return
    if len(parts) == 1:
        node[head] = MASK
        return
    child = node[head]
    if isinstance(child, dict):
        copy = dict(child)
        node[head] = copy
        _mask_path(copy, parts[1:])
