"""Composition root: the only place that wires concrete pieces together.

gRPC and HTTP share one event loop. ``start()`` and ``stop()`` are the only lifecycle; ``stop()``
is idempotent: it stops taking calls, lets in-flight ones finish within the grace period, then
flushes the store's writer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import timedelta

import grpc
import structlog
from grpc_health.v1 import health_pb2

from gateway.api.decisions import SERVICE
from gateway.api.http import health_app
from gateway.api.http_server import HttpServer
from gateway.api.tls import check_bind, server_credentials
from gateway.app_servers import grpc_server, http_routes
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.checkpoints import Signer
from gateway.audit.service import AuditTrail
from gateway.audit.timestamps import Stamper
from gateway.audit.wiring import start_audit
from gateway.backends.protocol import ModelBackend
from gateway.config import Settings
from gateway.core.accounts import AccountService
from gateway.core.admission import Admission
from gateway.core.auth import KeyAuthenticator, Principal
from gateway.core.limits import InputLimits
from gateway.core.notifier import Notifier
from gateway.core.pipeline import DecisionPipeline
from gateway.core.policy_in_force import BackendPool, PolicyInForce, policy_at_start
from gateway.core.queue import ReviewQueue
from gateway.core.remote_changes import RemoteChanges
from gateway.core.reviews import ReviewService
from gateway.core.session_purge import SessionPurger
from gateway.core.shadow import ShadowObserver
from gateway.core.shared_limits import SharedLimits, SharedLoginThrottle, rate_limiter
from gateway.core.slots import CallSlots
from gateway.core.sweeper import SlaSweeper
from gateway.core.switches import KillSwitches
from gateway.core.vault import Vault
from gateway.keys import GatewayKeys, load_keys
from gateway.modelrisk.early_warning import EarlyWarning
from gateway.modelrisk.escalations import Escalations
from gateway.modelrisk.gate import ModelGate, register_builtin_models
from gateway.modelrisk.inventory import ModelInventory
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.notify.delivery import OutboxDelivery, ReviewerScan
from gateway.notify.retention import OutboxPurger
from gateway.notify.wiring import start_notifications
from gateway.policy import PolicySet, load_policies
from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from gateway.telemetry.tracing import setup_tracing, shutdown_tracing
from gateway.types import Decision
from reviewer_ui.sessions import Sessions

log = structlog.get_logger("gateway.app")
HEALTH_FOLLOW_INTERVAL = 2.0
"""Seconds between checks that keep the gRPC health status of Decide in step with the store."""


class Gateway:
    def __init__(
        self,
        settings: Settings,
        *,
        limits: InputLimits | None = None,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        """``shared_limits``: the rate limit and sign-in throttle tables of the worker processes
        of one gateway (`gateway.workers`); None: this process's own."""
        self.settings = settings
        self._shared_limits = shared_limits
        self.limits = limits or InputLimits()
        self.grpc_port = 0
        self.http_port = 0
        self._started = False
        self._stopped = False
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._pool = BackendPool()
        self.backends: dict[str, ModelBackend] = self._pool.current
        """The model backends of the policy in force, by name (updated in place)."""
        self._policy: PolicyInForce | None = None
        self._shadow: ShadowObserver | None = None
        self._store: ReviewStore | None = None
        self._checkpointer: Checkpointer | None = None
        self.stamper: Stamper | None = None
        """Fetches RFC 3161 tokens for checkpoints when ``tsa_url`` is set."""
        self._sweeper: SlaSweeper | None = None
        self._session_purger: SessionPurger | None = None
        self._outbox_purger: OutboxPurger | None = None
        self.early_warning: EarlyWarning | None = None
        self._outbox: OutboxDelivery | None = None
        self._reviewer_scan: ReviewerScan | None = None
        self._switches: KillSwitches | None = None
        self._model_gate: ModelGate | None = None
        self.notifier = Notifier()
        self._remote: RemoteChanges | None = None

    # The core objects, for the reviewer UI and for tests that drive the real services.
    policy: PolicyInForce
    """The policy version in force, following the store (`gateway.core.policy_in_force`)."""
    store: ReviewStore
    pipeline: DecisionPipeline
    reviews: ReviewService
    auth: KeyAuthenticator
    audit: AuditTrail
    signer: Signer
    accounts: AccountService
    switches: KillSwitches
    model_gate: ModelGate
    inventory: ModelInventory
    escalations: Escalations
    queue: ReviewQueue
    vault: Vault
    keys: GatewayKeys
    sessions: Sessions

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        tls = s.tls_cert is not None
        check_bind(s.grpc_host, tls, s.allow_insecure, "grpc_host")
        check_bind(s.http_host, tls, s.allow_insecure, "http_host")
        setup_tracing()
        directory = load_policies(s.policies)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # From the settings, or files under data_dir; refused on a shared store unless all set.
        self.keys = load_keys(s)
        self.vault = self.keys.vault
        # Worker processes share the ports and the data (`gateway.workers`).
        self._store = self.store = open_store(s.store_url, shared_file=s.workers > 1)
        await self.store.start()
        # Every version in force is kept with its texts, for auditors (`audit policy DIGEST`);
        # the store says which is in force (one applied live outlives a restart).
        policies = await policy_at_start(self.store, directory, str(s.policies))
        self._remote = RemoteChanges(self.store, self.notifier)
        self.store.subscribe_changes(self._remote.changed)
        self.store.subscribe_resync(self._remote.resync)
        self.backends = self._pool.current
        self._policy = self.policy = PolicyInForce(self.store, self._pool)
        await self.policy.start(policies)
        self._shadow = ShadowObserver(self.store)
        self._shadow.start()
        self.pipeline = DecisionPipeline(
            policies=self.policy,
            shadow=self._shadow,
            admission=Admission(s.max_deciding),
            store=self.store,
            notifier=self.notifier,
            # The fleet's state as this process follows it; refuses while unconfirmed.
            paused=self._current_switches,
            # The model inventory, followed the same way (`gateway.modelrisk.gate`).
            models=self._current_models,
            vault=self.vault,
        )
        self.reviews = ReviewService(self.store, self.notifier)
        slots = CallSlots(s.max_concurrent_rpcs, s.max_calls_per_key, s.max_public_streams)
        limiter = rate_limiter(self._shared_limits, s.rate_limit, s.rate_burst)
        self.auth = KeyAuthenticator(self.store, limiter=limiter, slots=slots)
        await self._start_reviewing()
        await self._start_audit()
        await self._start_grpc()
        await self._start_http()
        log.info(
            "gateway.started",
            grpc=f"{s.grpc_host}:{self.grpc_port}",
            http=f"{s.http_host}:{self.http_port}",
            policy_version=self.policies.version,
            store=s.store_url.split("://", 1)[0],
        )

    async def _current_switches(self) -> Mapping[str, bool]:
        """The switches are built with the reviewing side, after the pipeline."""
        return await self.switches.current()

    async def _current_models(self) -> Mapping[ModelKey, ModelRecord]:
        """The inventory is followed from the reviewing side's start, after the pipeline."""
        return await self.model_gate.current()

    async def _start_reviewing(self) -> None:
        """Switches, accounts (with the first admin), the queue, SLA sweeper, session purger."""
        s = self.settings
        # Every store the gateway opens implements the review queue's part of the protocol.
        store = self.store
        self._switches = self.switches = KillSwitches(store, lambda: self.policies)
        await self.switches.start()
        # Built-in demo models are the gateway's own code: registered and approved here, so the
        # demo keeps its automatic path; OIP models never are (`gateway.modelrisk.gate`).
        await register_builtin_models(store, self.policies)
        self._model_gate = self.model_gate = ModelGate(store)
        await self.model_gate.start()
        self.inventory = ModelInventory(store, lambda: self.policies)
        shared = self._shared_limits
        self.accounts = AccountService(
            store, throttle=SharedLoginThrottle(shared) if shared is not None else None
        )
        password = await self.accounts.ensure_admin(s.admin_password or None)
        if password is not None:
            # Printed once, to the operator's terminal only; never logged.
            print(
                f"hitl-gateway: created reviewer UI account 'admin' with password {password}\n"
                "  (shown once; set HITL_ADMIN_PASSWORD to choose it instead)",
                file=sys.stderr,
                flush=True,
            )
        self.queue = ReviewQueue(
            store,
            self.reviews,
            lambda: self.policies,
            lease=timedelta(seconds=s.review_lease),
            vault=self.vault,
        )
        self._sweeper = SlaSweeper(
            store, lambda: self.policies, self.notifier, interval=s.sla_sweep_interval
        )
        self._sweeper.start()
        self._session_purger = SessionPurger(store)
        self._session_purger.start()
        self._outbox_purger = OutboxPurger(store, timedelta(seconds=self.settings.outbox_keep))
        self._outbox_purger.start()
        # Monitoring per model version acts on the policies' thresholds (one replica per breach).
        self.escalations = Escalations(store)
        self.early_warning = EarlyWarning(store, lambda: self.policies, inventory=self.inventory)
        self.early_warning.start()
        # Webhooks and reviewer messages queued with the changes that cause them.
        self._outbox, self._reviewer_scan = start_notifications(
            store, s, lambda: self.policies, self._decision_for_webhook
        )

    async def _decision_for_webhook(self, application: str, decision_id: str) -> Decision:
        """The decision as ``GetDecision`` returns it to its own application."""
        return await self.pipeline.get(decision_id, Principal("outbox", frozenset({application})))

    async def _start_grpc(self) -> None:
        s = self.settings
        server, self._health = grpc_server(self)
        address = f"{s.grpc_host}:{s.grpc_port}"
        if s.tls_cert is not None and s.tls_key is not None:
            creds = server_credentials(s.tls_cert, s.tls_key, s.tls_client_ca)
            self.grpc_port = server.add_secure_port(address, creds)
        else:
            self.grpc_port = server.add_insecure_port(address)
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC to {s.grpc_host}:{s.grpc_port}")
        await server.start()
        self._grpc = server
        serving = health_pb2.HealthCheckResponse.SERVING
        await self._health.set("", serving)
        await self._health.set(SERVICE, serving)
        # The chart's readiness probe asks gRPC health for this service: it must turn
        # NOT_SERVING when decisions cannot be recorded, as /readyz does. Only the store counts
        # here: a model outage is answered by each application's `on_model_error`, and taking
        # the replica out of service would stop every other application too.
        self._health.follow(SERVICE, self._can_record, HEALTH_FOLLOW_INTERVAL)

    async def _start_audit(self) -> None:
        """The auditors' read side and the checkpoint signer."""
        self.signer = self.keys.signer
        started = await start_audit(self.store, self.signer, self.keys.vault, self.settings)
        self.audit, self._checkpointer = started.audit, started.checkpointer
        self.stamper = started.stamper

    async def _start_http(self) -> None:
        self._http = HttpServer(self.settings)
        await self._http.start(health_app(self.readiness, http_routes(self), self.warnings))
        self.http_port = self._http.port

    @property
    def policies(self) -> PolicySet:
        """The enforced policy set now."""
        return self.policy.policies

    async def reload_policies(self) -> bool:
        """Apply the policy directory again (SIGHUP); see `PolicyInForce.reload`."""
        return await self.policy.reload(self.settings.policies)

    async def _store_checks(self) -> dict[str, bool]:
        store = self._store
        # A commit, not just a running store: reads still work on a full disk (`store.probe`).
        checks = {"store": store is not None and not self._stopped and await store.probe()}
        if store is not None:
            checks.update(store.readiness_checks())
        # Unconfirmed fleet state (kill switches, model inventory, policy version) refuses
        # every decision (`gateway.following.Follower.confirm`): out of service meanwhile.
        followed = {"switches": self._switches, "models": self._model_gate, "policy": self._policy}
        checks.update({k: f.confirmed() for k, f in followed.items() if f is not None})
        return checks

    async def _can_record(self) -> bool:
        return all((await self._store_checks()).values())

    def warnings(self) -> dict[str, str]:
        """What readiness warns about without failing (see `gateway.api.http.health_app`)."""
        sources = {"outbox": self._outbox, "audit:timestamps": self.stamper}
        found = {name: src.warning() for name, src in sources.items() if src is not None}
        return {name: text for name, text in found.items() if text is not None}

    async def readiness(self) -> dict[str, bool]:
        checks = await self._store_checks()
        for name, backend in self.backends.items():
            checks[f"backend:{name}"] = await backend.ready()
        return checks

    async def stop(self) -> None:
        """Stop taking calls, finish in-flight ones, flush the store. Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self._remote is not None:
            self._remote.close()
        grace = self.settings.shutdown_grace
        if self._sweeper is not None:
            await self._sweeper.stop()
        if self._session_purger is not None:
            await self._session_purger.stop()
        if self._outbox_purger is not None:
            await self._outbox_purger.stop()
        if self.early_warning is not None:
            await self.early_warning.stop()
        if self._reviewer_scan is not None:
            await self._reviewer_scan.stop()
        if self._outbox is not None:
            await self._outbox.stop()
        self.notifier.close()  # waiting callers answer now, with the state as it is
        if self._grpc is not None:
            await self._health.enter_graceful_shutdown()
            await self._grpc.stop(grace)
        if self._http is not None:
            await self._http.stop()
        if self._switches is not None:  # followed until no call can ask any more
            await self._switches.stop()
        if self._model_gate is not None:
            await self._model_gate.stop()
        if self._shadow is not None:
            await self._shadow.stop()
        if self._policy is not None:
            await self._policy.stop()
        await self._pool.stop()
        if self._remote is not None:
            await self._remote.drained()
        if self._store is not None:
            await self._store.stop()
        if self._checkpointer is not None:
            # After the store's final flush, so the last committed head gets signed.
            await self._checkpointer.stop()
        if self.stamper is not None:
            await self.stamper.stop()
        shutdown_tracing()
        log.info("gateway.stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
