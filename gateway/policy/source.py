"""YAML documents that remember where each value came from.

PyYAML's composed node tree keeps a start mark on every node; this module turns that tree into
plain Python values and a table from each value's path (``("applications", 0, "route", 1)``) to its
1-based line, so any error found later can name ``file:line``. Mapping entries are located at their
key, sequence items at the item itself.

Stricter than ``yaml.safe_load`` where it matters for policy: duplicate keys and non-string keys
are errors, not silently resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import PolicyError

__all__ = ["Loc", "SourceDoc", "format_loc", "read_yaml"]

Loc = tuple[str | int, ...]
_MERGE = "tag:yaml.org,2002:merge"


def format_loc(loc: Loc) -> str:
    """``("applications", 0, "route", 1, "when")`` -> ``applications[0].route[1].when``."""
    out: list[str] = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else str(part))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """One parsed YAML file: its display name, its data and the line of every value."""

    name: str
    data: Any
    lines: dict[Loc, int]

    def line(self, loc: Loc) -> int:
        """Line of ``loc``, or of its nearest ancestor that exists (e.g. for a missing key)."""
        for end in range(len(loc), -1, -1):
            found = self.lines.get(loc[:end])
            if found is not None:
                return found
        return 1

    def error(self, loc: Loc, message: str) -> PolicyError:
        return PolicyError(f"{self.name}:{self.line(loc)}", format_loc(loc), message)


def read_yaml(path: Path, name: str) -> SourceDoc:
    """Parse one YAML file; syntax and structure errors raise PolicyError naming ``name:line``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(name, "", f"cannot read: {exc}") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> SourceDoc:
    try:
        # The reader checks for unprintable characters already while it is constructed.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        raise PolicyError(f"{name}:{line}", "", f"YAML error: {exc}") from None
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {(): 1}
        data = _Builder(loader, name, lines).build(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(f"{name}:{line}", "", f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{name}:1", "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return SourceDoc(name, data, lines)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, name: str, lines: dict[Loc, int]) -> None:
        self._loader = loader
        self._name = name
        self._lines = lines
        self._active: set[int] = set()

    def _fail(self, node: yaml.Node, loc: Loc, message: str) -> PolicyError:
        return PolicyError(f"{self._name}:{node.start_mark.line + 1}", format_loc(loc), message)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._loader.construct_object(node)
        if id(node) in self._active:
            raise self._fail(node, loc, "recursive alias")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, loc)
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            raise self._fail(node, loc, f"unsupported YAML node {node.tag}")
        finally:
            self._active.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, loc: Loc) -> list[Any]:
        items: list[Any] = []
        for index, child in enumerate(node.value):
            here = (*loc, index)
            self._lines[here] = child.start_mark.line + 1
            items.append(self.build(child, here))
        return items

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        self._loader.flatten_mapping(node)  # resolves YAML merge keys (<<), merged pairs first
        merged = len(node.value) - own
        out: dict[str, Any] = {}
        own_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.build(key_node, loc)
            if not isinstance(key, str):
                raise self._fail(key_node, loc, f"keys must be strings, got {key!r}")
            here = (*loc, key)
            if index >= merged:  # the mapping's own keys override merged ones, never each other
                if key in own_keys:
                    raise self._fail(key_node, here, f"duplicate key {key!r}")
                own_keys.add(key)
            self._lines[here] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, here)
        return out
