"""The servers of a gateway: the gRPC server with its options and every service on it, and the
HTTP routes beside health (part of the composition root, `gateway.app`, kept apart so that
module stays a readable list of what starts when)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route

from gateway._pb.hitl.audit.v1 import audit_pb2
from gateway._pb.hitl.gateway.v1 import gateway_pb2
from gateway.api.admin import SERVICE as ADMIN_SERVICE
from gateway.api.admin import AdminServicer
from gateway.api.audit import AuditServicer
from gateway.api.chat_routes import chat_routes
from gateway.api.decisions import DecisionGatewayServicer
from gateway.api.inference import SERVICE as INFERENCE_SERVICE
from gateway.api.inference import InferenceServicer
from gateway.api.metrics import metrics_route
from gateway.api.oip_rest import oip_rest_routes
from gateway.api.policy_admin import PolicyAdminServicer
from gateway.api.public import Health, reflection_handler
from gateway.audit.checkpoints import public_key_pem
from gateway.config import sso_config
from gateway.core.chat import ChatService
from gateway.core.erasure import SubjectErasure
from gateway.core.inference import InferenceService
from gateway.core.policy_changes import PolicyChanges
from gateway.core.sso import TrustedHeaderSso
from gateway.notify.dead_letters import OutboxAdmin
from reviewer_ui.app import PREFIX as UI_PREFIX
from reviewer_ui.app import UiServices
from reviewer_ui.app import build_app as build_ui
from reviewer_ui.sessions import Sessions

if TYPE_CHECKING:
    from gateway.app import Gateway


def http_routes(gw: Gateway) -> list[BaseRoute]:
    """The reviewer UI, metrics, the OpenAI-compatible chat and OIP over REST."""
    s = gw.settings
    services = UiServices(
        queue=gw.queue,
        accounts=gw.accounts,
        switches=gw.switches,
        inventory=gw.inventory,
        monitoring=gw.early_warning,
        notifier=gw.notifier,
        policies=lambda: gw.policies,
        audit=gw.audit,
        sso=TrustedHeaderSso(sso_config(s)),
        outbox=OutboxAdmin(gw.store),
    )
    gw.sessions = Sessions(gw.keys.session_key, store=gw.store, idle=s.session_idle)
    # OpenAI-compatible chat and OIP over REST: the same core as their gRPC counterparts.
    inference = InferenceService(gw.pipeline, gw.backends, gw.readiness)
    body = s.max_message_bytes
    return [
        metrics_route(gw.store.queue_stats),
        *chat_routes(ChatService(gw.pipeline), gw.auth, gw.limits, body),
        *oip_rest_routes(inference, gw.auth, gw.limits, body),
        Mount(UI_PREFIX, build_ui(services, gw.sessions)),
        Route("/", RedirectResponse(UI_PREFIX + "/")),
    ]


def grpc_server(gw: Gateway) -> tuple[grpc.aio.Server, Health]:
    """The server (not bound) with every service of ``gw``, and its health service."""
    s = gw.settings
    # Our own accounting bounds calls in progress (gateway.core.slots), not grpc.aio's
    # maximum_concurrent_rpcs: that counts health checks too, and one key's idle watches
    # filled it so that the health check and every other key were refused.
    admitted = s.max_concurrent_rpcs + s.max_public_streams
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            # Only worker processes share a port; one gateway alone must own it.
            ("grpc.so_reuseport", 1 if s.workers > 1 else 0),
            # grpc core cancels calls queued for the event loop beyond 1,000 (at random;
            # 3,000: all), before our code sees them: a burst of 2,000 watches lost one in
            # ten, unlogged. Queue what the bounds admit, so that they refuse the excess.
            ("grpc.server.max_pending_requests", admitted),
            ("grpc.server.max_pending_requests_hard_limit", 2 * admitted),
        ],
    )
    auth = gw.auth
    servicer = DecisionGatewayServicer(gw.pipeline, gw.limits, watch_lifetime=s.watch_max_seconds)
    auditor = AuditServicer(
        gw.audit, public_key_pem(gw.signer.public_key), gw.store.get_policy_version
    )
    erasure = SubjectErasure(gw.store, gw.limits.max_id_length)
    admin = AdminServicer(erasure, gw.switches, gw.inventory, gw.escalations, OutboxAdmin(gw.store))
    changes = PolicyChanges(gw.policy, gw.store, s.store_url, gw.vault)
    inference = InferenceService(gw.pipeline, gw.backends, gw.readiness)
    health = Health(auth.slots)
    handlers = (
        servicer.handler(auth),
        auditor.handler(auth),
        admin.handler(auth),
        # The policy operations of AdminService, served by a handler of their own.
        PolicyAdminServicer(changes).handler(auth),
        InferenceServicer(inference, gw.limits).handler(auth),
        health.handler(),
    )
    for handler in handlers:
        server.add_generic_rpc_handlers((handler,))
    names = (
        gateway_pb2.DESCRIPTOR.services_by_name["DecisionGateway"].full_name,
        audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
        ADMIN_SERVICE,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        INFERENCE_SERVICE,
        reflection.SERVICE_NAME,
    )
    server.add_generic_rpc_handlers((reflection_handler(names, auth.slots),))
    return server, health
