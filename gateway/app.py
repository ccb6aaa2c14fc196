"""Composition root: the only place that wires concrete pieces together.

gRPC and HTTP share one event loop. ``start()`` and ``stop()`` are the only lifecycle; ``stop()``
is idempotent: it stops taking calls, lets in-flight ones finish within the grace period, then
flushes the store's writer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import grpc
import structlog
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route

from gateway._pb.hitl.audit.v1 import audit_pb2
from gateway._pb.hitl.gateway.v1 import gateway_pb2
from gateway.api.admin import SERVICE as ADMIN_SERVICE
from gateway.api.admin import AdminServicer
from gateway.api.audit import AuditServicer
from gateway.api.decisions import SERVICE, DecisionGatewayServicer
from gateway.api.http import health_app
from gateway.api.http_server import HttpServer
from gateway.api.inference import SERVICE as INFERENCE_SERVICE
from gateway.api.inference import InferenceServicer
from gateway.api.metrics import metrics_route
from gateway.api.public import Health, reflection_handler
from gateway.api.tls import check_bind, server_credentials
from gateway.audit.checkpointer import Checkpointer
from gateway.audit.checkpoints import Signer, public_key_pem
from gateway.audit.service import AuditTrail
from gateway.backends.protocol import ModelBackend
from gateway.backends.registry import application_backends, build_backend
from gateway.config import Settings, sso_config
from gateway.core.accounts import AccountService
from gateway.core.auth import KeyAuthenticator
from gateway.core.erasure import SubjectErasure
from gateway.core.inference import InferenceService
from gateway.core.limits import InputLimits
from gateway.core.notifier import Notifier
from gateway.core.pipeline import DecisionPipeline
from gateway.core.queue import ReviewQueue
from gateway.core.ratelimit import RateLimiter
from gateway.core.remote_changes import RemoteChanges
from gateway.core.reviews import ReviewService
from gateway.core.session_purge import SessionPurger
from gateway.core.slots import CallSlots
from gateway.core.sso import TrustedHeaderSso
from gateway.core.sweeper import SlaSweeper
from gateway.core.switches import KillSwitches
from gateway.core.vault import Vault
from gateway.keys import GatewayKeys, load_keys
from gateway.modelrisk.early_warning import EarlyWarning
from gateway.modelrisk.escalations import Escalations
from gateway.modelrisk.gate import ModelGate, register_builtin_models
from gateway.modelrisk.inventory import ModelInventory
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.policy import PolicySet, load_policies
from gateway.policy.versions import policy_loaded
from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from gateway.telemetry.tracing import setup_tracing, shutdown_tracing
from reviewer_ui.app import PREFIX as UI_PREFIX
from reviewer_ui.app import UiServices
from reviewer_ui.app import build_app as build_ui
from reviewer_ui.sessions import Sessions

log = structlog.get_logger("gateway.app")
HEALTH_FOLLOW_INTERVAL = 2.0
"""Seconds between checks that keep the gRPC health status of Decide in step with the store."""


class Gateway:
    def __init__(self, settings: Settings, *, limits: InputLimits | None = None) -> None:
        self.settings = settings
        self.limits = limits or InputLimits()
        self.grpc_port = 0
        self.http_port = 0
        self._started = False
        self._stopped = False
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._backends: dict[str, ModelBackend] = {}
        self._store: ReviewStore | None = None
        self._checkpointer: Checkpointer | None = None
        self._sweeper: SlaSweeper | None = None
        self._session_purger: SessionPurger | None = None
        self._early_warning: EarlyWarning | None = None
        self._switches: KillSwitches | None = None
        self._model_gate: ModelGate | None = None
        self.notifier = Notifier()
        self._remote: RemoteChanges | None = None

    # The core objects, for the reviewer UI and for tests that drive the real services.
    policies: PolicySet
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
        self.policies = load_policies(s.policies)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # From the settings, or files under data_dir; refused on a shared store unless all set.
        self.keys = load_keys(s)
        self.vault = self.keys.vault
        self._store = self.store = open_store(s.store_url)
        await self.store.start()
        # Every version in force is kept with its texts, for auditors (`audit policy DIGEST`).
        loaded = (self.policies.version, self.policies.files, str(s.policies))
        await self.store.record_policy_version(*policy_loaded(*loaded, "system", datetime.now(UTC)))
        self._remote = RemoteChanges(self.store, self.notifier)
        self.store.subscribe_changes(self._remote.changed)
        self.store.subscribe_resync(self._remote.resync)
        for name, spec in self.policies.backends.items():
            backend = build_backend(spec)
            await backend.start()
            self._backends[name] = backend
        self.pipeline = DecisionPipeline(
            policies=self.policies,
            backends=self._backends,
            app_backends=application_backends(self.policies.applications.values(), self._backends),
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
        limiter = RateLimiter(s.rate_limit, s.rate_burst)
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
        self._switches = self.switches = KillSwitches(store, self.policies)
        await self.switches.start()
        # Built-in demo models are the gateway's own code: registered and approved here, so the
        # demo keeps its automatic path; OIP models never are (`gateway.modelrisk.gate`).
        await register_builtin_models(store, self.policies)
        self._model_gate = self.model_gate = ModelGate(store)
        await self.model_gate.start()
        self.inventory = ModelInventory(store, self.policies)
        self.accounts = AccountService(store)
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
            self.policies,
            lease=timedelta(seconds=s.review_lease),
            vault=self.vault,
        )
        self._sweeper = SlaSweeper(
            store, self.policies, self.notifier, interval=s.sla_sweep_interval
        )
        self._sweeper.start()
        self._session_purger = SessionPurger(store)
        self._session_purger.start()
        # Monitoring per model version acts on the policies' thresholds (one replica per breach).
        self.escalations = Escalations(store)
        self._early_warning = EarlyWarning(store, lambda: self.policies, inventory=self.inventory)
        self._early_warning.start()

    def _http_routes(self) -> list[BaseRoute]:
        """The reviewer UI, mounted on the HTTP server next to health."""
        s = self.settings
        services = UiServices(
            queue=self.queue,
            accounts=self.accounts,
            switches=self.switches,
            inventory=self.inventory,
            monitoring=self._early_warning,
            notifier=self.notifier,
            policies=self.policies,
            audit=self.audit,
            sso=TrustedHeaderSso(sso_config(s)),
        )
        self.sessions = Sessions(self.keys.session_key, store=self.store, idle=s.session_idle)
        return [
            metrics_route(self.store.queue_stats),
            Mount(UI_PREFIX, build_ui(services, self.sessions)),
            Route("/", RedirectResponse(UI_PREFIX + "/")),
        ]

    async def _start_grpc(self) -> None:
        s = self.settings
        # Our own accounting bounds calls in progress (gateway.core.slots), not grpc.aio's
        # maximum_concurrent_rpcs: that counts health checks too, and one key's idle watches
        # filled it so that the health check and every other key were refused.
        admitted = s.max_concurrent_rpcs + s.max_public_streams
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                ("grpc.so_reuseport", 0),
                # grpc core cancels calls queued for the event loop beyond 1,000 (at random;
                # 3,000: all), before our code sees them: a burst of 2,000 watches lost one in
                # ten, unlogged. Queue what the bounds admit, so that they refuse the excess.
                ("grpc.server.max_pending_requests", admitted),
                ("grpc.server.max_pending_requests_hard_limit", 2 * admitted),
            ],
        )
        servicer = DecisionGatewayServicer(
            self.pipeline, self.limits, watch_lifetime=s.watch_max_seconds
        )
        server.add_generic_rpc_handlers((servicer.handler(self.auth),))
        auditor = AuditServicer(
            self.audit, public_key_pem(self.signer.public_key), self.store.get_policy_version
        )
        server.add_generic_rpc_handlers((auditor.handler(self.auth),))
        erasure = SubjectErasure(self.store, self.limits.max_id_length)
        admin = AdminServicer(erasure, self.switches, self.inventory, self.escalations)
        server.add_generic_rpc_handlers((admin.handler(self.auth),))
        inference = InferenceService(self.pipeline, self._backends, self.readiness)
        inferer = InferenceServicer(inference, self.limits)
        server.add_generic_rpc_handlers((inferer.handler(self.auth),))
        self._health = Health(self.auth.slots)
        server.add_generic_rpc_handlers((self._health.handler(),))
        names = (
            gateway_pb2.DESCRIPTOR.services_by_name["DecisionGateway"].full_name,
            audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
            ADMIN_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            INFERENCE_SERVICE,
            reflection.SERVICE_NAME,
        )
        server.add_generic_rpc_handlers((reflection_handler(names, self.auth.slots),))
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
        s = self.settings
        self.signer = self.keys.signer
        side = await self.store.open_audit(self.signer.public_key)
        self.audit = AuditTrail(side.log)
        self._checkpointer = Checkpointer(
            self.store.chain_head,
            self.signer,
            side.save,
            every_events=s.audit_checkpoint_events,
            every_seconds=s.audit_checkpoint_seconds,
            last_seq=0 if side.latest is None else side.latest.seq,
            close=side.close,
        )
        await self._checkpointer.start()

    async def _start_http(self) -> None:
        self._http = HttpServer(self.settings)
        await self._http.start(health_app(self.readiness, self._http_routes()))
        self.http_port = self._http.port

    async def _store_checks(self) -> dict[str, bool]:
        store = self._store
        # A commit, not just a running store: reads still work on a full disk (`store.probe`).
        checks = {"store": store is not None and not self._stopped and await store.probe()}
        if store is not None:
            checks.update(store.readiness_checks())
        if self._switches is not None:
            # Unconfirmed kill switch state refuses every decision (`KillSwitches.current`).
            checks["switches"] = self._switches.confirmed()
        if self._model_gate is not None:
            # Likewise an unconfirmed model inventory (`ModelGate.current`).
            checks["models"] = self._model_gate.confirmed()
        return checks

    async def _can_record(self) -> bool:
        return all((await self._store_checks()).values())

    async def readiness(self) -> dict[str, bool]:
        checks = await self._store_checks()
        for name, backend in self._backends.items():
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
        if self._early_warning is not None:
            await self._early_warning.stop()
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
        for backend in self._backends.values():
            await backend.stop()
        if self._remote is not None:
            await self._remote.drained()
        if self._store is not None:
            await self._store.stop()
        if self._checkpointer is not None:
            # After the store's final flush, so the last committed head gets signed.
            await self._checkpointer.stop()
        shutdown_tracing()
        log.info("gateway.stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
