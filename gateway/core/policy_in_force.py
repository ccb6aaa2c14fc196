"""The policy in force in this process, swapped whole when the fleet's version changes.

Which version is in force is the store's (`gateway.store.policies`: the version loaded last),
so every replica follows one answer: a version applied through any of them (`apply`, the
``policy apply`` command, SIGHUP) is stored with its texts and its ``policy.loaded`` event,
swapped in at once here, and read by every other replica through `gateway.following.Follower`
(re-read every 0.5 s, at once on PostgreSQL's announcement; a decision waits for a re-read when
the last one is older than a second, and is refused when that read fails). The same holds for
the shadow version (`gateway.core.shadow`).

Atomic: a decision takes one `Compiled` at its start and is classified, routed and recorded
under it (its ``policy_version``), whatever is swapped meanwhile. Model backends are built once
per backend spec and kept until the gateway stops (`BackendPool`), so a decision in flight under
the old version can still call its model.

A candidate that does not load is refused with the loader's file:line:field error and changes
nothing; one whose own ``tests/`` cases fail is refused unless forced with a reason, and the
forcing is in its ``policy.loaded`` event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gateway.audit.events import EventType, event
from gateway.backends.protocol import ModelBackend
from gateway.backends.registry import application_backends, build_backend
from gateway.core.evaluation import Evaluator
from gateway.errors import FailedPrecondition, GatewayError, InvalidInput, PolicyError
from gateway.following import Follower
from gateway.modelrisk.gate import register_builtin_models
from gateway.policy import BackendSpec, PolicySet
from gateway.policy.testing import format_results
from gateway.policy.texts import check_candidate, load_policy_texts, read_candidate
from gateway.policy.versions import policy_loaded
from gateway.store.protocol import ReviewStore

log = structlog.get_logger("gateway.policy")

__all__ = ["ApplyResult", "BackendPool", "Candidate", "Compiled", "PolicyInForce"]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A policy version ready to decide with: its set and its evaluator (with its backends)."""

    policies: PolicySet
    evaluator: Evaluator


@dataclass(frozen=True, slots=True)
class Candidate:
    """A policy version offered to a running gateway."""

    files: tuple[tuple[str, str], ...]
    """(name, text): policy files, and the schema files they name."""
    tests: tuple[tuple[str, str], ...] = ()
    """(name, text) of its ``tests/`` cases."""
    source: str = "apply"
    """Where it came from, as its ``policy.loaded`` event says (a directory, or ``apply``)."""
    shadow: bool = False
    """Evaluate it alongside the enforced version instead of enforcing it."""
    force: str = ""
    """A reason to apply it although its own tests fail ("": refuse then)."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    digest: str
    previous: str
    changed: bool
    """False when it already was the version (or shadow) in force: nothing was written."""
    shadow: bool
    tests_passed: int
    tests_failed: int
    forced: bool


class BackendPool:
    """Model backends by name, one per distinct spec, kept until `stop`."""

    def __init__(self) -> None:
        self._live: dict[str, tuple[BackendSpec, ModelBackend]] = {}
        self._replaced: list[ModelBackend] = []
        self.current: dict[str, ModelBackend] = {}
        """The backends of the version in force by name (for health and inference metadata);
        updated in place."""

    async def backends_for(self, policies: PolicySet) -> dict[str, ModelBackend]:
        """The backends ``policies`` names, building (and starting) those not built yet."""
        out: dict[str, ModelBackend] = {}
        for name, spec in policies.backends.items():
            have = self._live.get(name)
            if have is None or have[0] != spec:
                backend = build_backend(spec)
                await backend.start()
                if have is not None:
                    self._replaced.append(have[1])
                self._live[name] = (spec, backend)
            out[name] = self._live[name][1]
        return out

    def compile(self, policies: PolicySet, backends: Mapping[str, ModelBackend]) -> Compiled:
        apps = application_backends(policies.applications.values(), backends)
        return Compiled(policies, Evaluator(policies, backends, apps, lambda: datetime.now(UTC)))

    async def stop(self) -> None:
        backends = [b for _, b in self._live.values()] + self._replaced
        self._live, self._replaced = {}, []
        self.current.clear()
        for backend in backends:
            await backend.stop()


class PolicyInForce:
    """The enforced (and shadow) version of this process, following the store.

    Args:
        store: Where the version in force is kept.
        initial: The version loaded at start (already recorded in the store).
        pool: The model backends.
        refresh_every, trust_for: As `gateway.following.Follower`.
    """

    def __init__(
        self,
        store: ReviewStore,
        pool: BackendPool,
        *,
        refresh_every: float = 0.5,
        trust_for: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._pool = pool
        self._clock = clock
        self._enforced: Compiled | None = None
        self._shadow: Compiled | None = None
        self._known: dict[str, Compiled] = {}
        self._follower: Follower[tuple[Compiled, Compiled | None]] = Follower(
            "policy",
            "the policy version in force",
            self._read,
            self._apply,
            (store.subscribe_policies, store.subscribe_resync),
            refresh_every=refresh_every,
            trust_for=trust_for,
        )

    # -- reading -----------------------------------------------------------------------------

    @property
    def policies(self) -> PolicySet:
        """The enforced policy set now (for lookups outside a decision)."""
        assert self._enforced is not None, "PolicyInForce.start() not called"
        return self._enforced.policies

    @property
    def shadow(self) -> PolicySet | None:
        return self._shadow.policies if self._shadow is not None else None

    async def enforced(self) -> Compiled:
        """The enforced version for one decision, confirmed with the store within a second.

        Raises:
            StoreUnavailable: Not confirmed and the store cannot be read now.
        """
        await self._follower.confirm()
        assert self._enforced is not None
        return self._enforced

    def confirmed(self) -> bool:
        return self._follower.confirmed()

    # -- following ---------------------------------------------------------------------------

    async def start(self, initial: PolicySet) -> None:
        """Take ``initial`` (the directory's version, or the store's when that is in force),
        then follow the store."""
        compiled = await self._compile(initial)
        self._enforced = compiled
        self._pool.current.update(compiled.evaluator.backends)
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

    async def _read(self) -> list[tuple[Compiled, Compiled | None]]:
        digest = await self._store.enforced_policy()
        shadow = await self._store.shadow_policy()
        assert self._enforced is not None
        enforced = await self._version(digest) if digest else self._enforced
        return [(enforced, await self._version(shadow.digest) if shadow is not None else None)]

    def _apply(self, rows: Iterable[tuple[Compiled, Compiled | None]]) -> None:
        for enforced, shadow in rows:
            before = self._enforced
            self._enforced, self._shadow = enforced, shadow
            current = self._pool.current
            current.clear()
            current.update(enforced.evaluator.backends)
            if before is not None and before.policies.version != enforced.policies.version:
                log.info(
                    "policy.switched",
                    previous=before.policies.version,
                    version=enforced.policies.version,
                )

    async def _version(self, digest: str) -> Compiled:
        """The compiled version ``digest`` (read from the store the first time).

        Raises:
            PolicyError: It does not load here (the follower keeps the old version and this
                replica unconfirmed: it refuses decisions rather than decide by stale rules).
        """
        known = self._known.get(digest)
        if known is not None:
            return known
        stored = await self._store.get_policy_version(digest)
        if stored is None:
            raise PolicyError(digest, "", "policy version in force is not stored")
        policies = await asyncio.to_thread(load_policy_texts, stored.files)
        return await self._compile(policies)

    async def _compile(self, policies: PolicySet) -> Compiled:
        backends = await self._pool.backends_for(policies)
        compiled = self._pool.compile(policies, backends)
        self._known[policies.version] = compiled
        return compiled

    # -- applying ----------------------------------------------------------------------------

    async def apply(self, candidate: Candidate, actor: str) -> ApplyResult:
        """Check, store and activate ``candidate`` (see the module docstring).

        Raises:
            InvalidInput: The candidate does not load (the loader's file:line:field error).
            FailedPrecondition: Its own tests fail and it is not forced.
        """
        if not candidate.files:
            raise InvalidInput("files", "no policy files")
        try:
            policies, results = await asyncio.to_thread(
                check_candidate, candidate.files, candidate.tests
            )
        except PolicyError as exc:
            raise InvalidInput("files", str(exc)) from None
        failed = [r for r in results if not r.passed]
        if failed and not candidate.force.strip():
            raise FailedPrecondition(
                f"{len(failed)} of {len(results)} policy test cases fail; fix them or force "
                f"with a reason:\n{format_results(failed)}"
            )
        compiled = await self._compile(policies)
        now = self._clock()
        tests = {"passed": len(results) - len(failed), "failed": len(failed)}
        if failed:
            tests["forced"] = True
        version, loaded = policy_loaded(
            policies.version, policies.files, candidate.source, actor, now
        )
        payload = {**loaded.payload, "tests": tests}
        if failed:
            payload["forced_reason"] = candidate.force.strip()
        async with self._follower.lock:
            previous = await self._store.enforced_policy()
            if candidate.shadow:
                shadowed = event(EventType.POLICY_SHADOWED, "", actor, payload)
                old = await self._store.shadow_policy()
                previous = old.digest if old is not None else ""
                changed = await self._store.set_shadow_policy(version, shadowed, now)
            else:
                changed = await self._store.record_policy_version(
                    version, event(EventType.POLICY_LOADED, "", actor, payload)
                )
                shadow = await self._store.shadow_policy()
                if shadow is not None and shadow.digest == version.digest:
                    # Promoted: the shadow has nothing left to compare.
                    cleared = event(EventType.POLICY_SHADOWED, "", actor, {"digest": ""})
                    await self._store.set_shadow_policy(None, cleared, now)
            await self._follower.read()
        if not candidate.shadow:
            # Built-in demo models of a new version join the inventory as they do at start.
            await register_builtin_models(self._store, compiled.policies)
        log.info(
            "policy.applied",
            version=version.digest,
            previous=previous,
            shadow=candidate.shadow,
            changed=changed,
            actor=actor,
        )
        return ApplyResult(
            digest=version.digest,
            previous=previous,
            changed=changed,
            shadow=candidate.shadow,
            tests_passed=tests["passed"],
            tests_failed=len(failed),
            forced=bool(failed),
        )

    async def reload(self, directory: Path, actor: str = "system:reload") -> bool:
        """Apply ``directory`` again (SIGHUP), as ``policy apply`` would; a version that does
        not load or whose tests fail is refused (logged) and the one in force stays. True when
        the version in force changed."""
        try:
            files, tests = await asyncio.to_thread(read_candidate, directory)
            result = await self.apply(
                Candidate(tuple(files), tuple(tests), source=str(directory)), actor
            )
        except (GatewayError, OSError) as exc:
            log.error("policy.reload_refused", directory=str(directory), error=str(exc))
            return False
        return result.changed

    async def clear_shadow(self, actor: str) -> bool:
        """Stop evaluating a shadow version. False when there was none."""
        cleared = event(EventType.POLICY_SHADOWED, "", actor, {"digest": ""})
        async with self._follower.lock:
            changed = await self._store.set_shadow_policy(None, cleared, self._clock())
            await self._follower.read()
        return changed


async def policy_at_start(store: ReviewStore, directory: PolicySet, source: str) -> PolicySet:
    """The version to start with: the directory's, unless the store holds a version in force
    that the directory does not replace (`gateway.store.policies`: one applied live since the
    directory's files were deployed). Records the directory's version when it takes over."""
    version, loaded = policy_loaded(
        directory.version, directory.files, source, "system", datetime.now(UTC)
    )
    await store.record_policy_version(version, loaded, at_start=True)
    digest = await store.enforced_policy()
    if digest in ("", directory.version):
        return directory
    stored = await store.get_policy_version(digest)
    if stored is None:
        raise PolicyError(digest, "", "policy version in force is not stored")
    log.warning(
        "policy.directory_not_in_force",
        directory=directory.version,
        version=digest,
        loaded_by=stored.loaded_by,
        loaded_at=stored.loaded_at.isoformat(),
    )
    return await asyncio.to_thread(load_policy_texts, stored.files)


async def stored_in_force(store: ReviewStore, fallback: PolicySet) -> PolicySet:
    """The version in force in ``store`` (for a command working on the store directly), or
    ``fallback`` (the local directory's) when it is the same or none is stored."""
    digest = await store.enforced_policy()
    if digest in ("", fallback.version):
        return fallback
    stored = await store.get_policy_version(digest)
    if stored is None:
        return fallback
    return await asyncio.to_thread(load_policy_texts, stored.files)
