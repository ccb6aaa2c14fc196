"""A running gateway's policy operations, through AdminService with an admin key (the
``--target`` side of ``hitl-gateway policy apply | clear-shadow | shadow-report | replay``).
Blocking, like `gateway.client_admin`, whose channel and trace propagation it shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from google.protobuf import timestamp_pb2

from gateway._pb.hitl.admin.v1 import policy_pb2 as pb
from gateway.client_admin import AdminClient


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _files(files: list[tuple[str, str]]) -> list[pb.PolicyFile]:
    return [pb.PolicyFile(name=n, text=t) for n, t in files]


class PolicyClient(AdminClient):
    """The policy RPCs of one gateway. Raises ``grpc.RpcError`` on refusals."""

    def apply(
        self,
        files: list[tuple[str, str]],
        tests: list[tuple[str, str]],
        *,
        source: str,
        shadow: bool = False,
        force_reason: str = "",
    ) -> pb.ApplyPolicyResponse:
        request = pb.ApplyPolicyRequest(
            files=_files(files),
            tests=_files(tests),
            shadow=shadow,
            force_reason=force_reason,
            source=source,
        )
        response: pb.ApplyPolicyResponse = self._stub.ApplyPolicy(
            request, metadata=self._metadata()
        )
        return response

    def clear_shadow(self) -> bool:
        request = pb.ClearShadowPolicyRequest()
        return bool(self._stub.ClearShadowPolicy(request, metadata=self._metadata()).changed)

    def shadow_report(self, digest: str = "", limit: int = 0) -> pb.ShadowReportResponse:
        request = pb.ShadowReportRequest(digest=digest, limit=limit)
        response: pb.ShadowReportResponse = self._stub.ShadowReport(
            request, metadata=self._metadata()
        )
        return response

    def replay(
        self, files: list[tuple[str, str]], since: datetime, until: datetime, application: str
    ) -> dict[str, Any]:
        """The replay report as ``policy replay --format json`` prints it."""
        request = pb.ReplayPolicyRequest(
            files=_files(files), since=_ts(since), until=_ts(until), application=application
        )
        response = self._stub.ReplayPolicy(request, metadata=self._metadata())
        report: dict[str, Any] = orjson.loads(response.report_json)
        return report
