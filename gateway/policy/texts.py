"""A policy set from texts instead of a directory: a candidate sent to a running gateway, or a
version read back from the store by a replica that follows it.

The texts are written to a private temporary directory and loaded by `load_policies`, so the
one loader (and its file:line:field errors) decides what a valid policy is, and the digest of
the result is the digest a directory with the same files gives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from gateway.errors import PolicyError
from gateway.policy.loader import load_policies, policy_files
from gateway.policy.model import PolicySet
from gateway.policy.testing import CaseResult, run_policy_tests
from gateway.policy.versions import file_bytes

__all__ = ["MAX_FILE_BYTES", "check_candidate", "load_policy_texts", "read_candidate"]

MAX_FILE_BYTES = 1 << 20
"""A policy, schema or test file larger than this is refused (1 MiB)."""


def _safe_name(name: str, field: str) -> PurePosixPath:
    """``name`` as a relative path inside the directory; anything that could leave it is
    refused (the names come from a caller)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\0" in name:
        raise PolicyError(
            name or "(empty)", field, "expected a relative file name inside the directory"
        )
    return path


def _write(root: Path, files: Iterable[tuple[str, str]], field: str) -> None:
    for name, text in files:
        data = file_bytes(text)
        if len(data) > MAX_FILE_BYTES:
            raise PolicyError(name, field, f"file larger than {MAX_FILE_BYTES} bytes")
        target = root / _safe_name(name, field)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def load_policy_texts(files: Iterable[tuple[str, str]]) -> PolicySet:
    """The policy set of ``files`` ((name, text): policy files at the top, schema files by the
    relative names the policies use). Raises PolicyError as `load_policies` does."""
    with tempfile.TemporaryDirectory(prefix="hitl-policy-") as tmp:
        root = Path(tmp)
        _write(root, files, "files")
        return load_policies(root)


def check_candidate(
    files: Iterable[tuple[str, str]], tests: Iterable[tuple[str, str]]
) -> tuple[PolicySet, list[CaseResult]]:
    """Load a candidate and run its own test cases (``tests``: (name in ``tests/``, text)).

    Raises PolicyError when the candidate or a test file does not load; a case that runs and
    fails is a failed `CaseResult`.
    """
    with tempfile.TemporaryDirectory(prefix="hitl-policy-") as tmp:
        root = Path(tmp)
        _write(root, files, "files")
        _write(root / "tests", tests, "tests")
        policies = load_policies(root)
        return policies, run_policy_tests(root, policies)


def read_candidate(directory: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every file of a policy directory to send to a gateway: ``(files, tests)``.

    ``files`` holds everything but ``tests/`` (policies, and any schema or CA file they name
    relatively), ``tests`` the test cases by their names inside ``tests/``.
    """
    policy_files(directory)  # a missing directory is refused the way the loader refuses it
    files: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory)
        if rel.parts[0].startswith("."):
            continue
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise PolicyError(str(rel), "", f"file larger than {MAX_FILE_BYTES} bytes")
        text = data.decode("utf-8", "surrogateescape")
        if rel.parts[0] == "tests":
            if len(rel.parts) == 2:
                tests.append((rel.parts[1], text))
        else:
            files.append((rel.as_posix(), text))
    return files, tests
