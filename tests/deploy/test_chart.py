"""The Helm chart, rendered and linted by a real Helm engine (Helm v4 as a library)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "hitl-gateway"


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Rendered manifests grouped by kind."""
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    out = chart.render(values, name="bank", namespace="risk")
    kinds: dict[str, list[dict[str, Any]]] = {}
    for text in out.values():
        for doc in yaml.safe_load_all(text):
            if doc:
                kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def container(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (deployment,) = kinds["Deployment"]
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_chart_lints_clean() -> None:
    """helm lint reports no errors or warnings for the default values."""
    report = helm.lint(str(CHART))
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_is_one_sqlite_replica_on_a_volume() -> None:
    """SQLite mode forces one replica with a kept PVC and Recreate, whatever replicaCount says."""
    kinds = render({"replicaCount": 3})
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    (pvc,) = kinds["PersistentVolumeClaim"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "PodDisruptionBudget" not in kinds and "HorizontalPodAutoscaler" not in kinds


def test_probes_and_security_context() -> None:
    """gRPC and HTTP probes are set; the container runs non-root on a read-only filesystem."""
    c = container(render({}))
    assert c["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "hitl.gateway.v1.DecisionGateway",
    }
    assert c["startupProbe"]["grpc"]["port"] == 50051
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    (deployment,) = render({})["Deployment"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["limits"]["memory"] == "1Gi"


def test_policies_are_mounted_from_the_shipped_files() -> None:
    """The ConfigMap holds the shipped policy files, mounted where HITL_POLICIES points."""
    kinds = render({})
    (cm,) = kinds["ConfigMap"]
    shipped = {p.name: p.read_text() for p in (ROOT / "policies").glob("*.yaml")}
    assert {k: v.rstrip() for k, v in cm["data"].items()} == {
        k: v.rstrip() for k, v in shipped.items()
    }
    c = container(kinds)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env(c)["HITL_POLICIES"] == mounts["policies"]
    assert env(c)["HITL_DATA_DIR"] == mounts["data"]


def test_postgresql_mode_with_three_replicas_and_autoscaling() -> None:
    """PostgreSQL mode runs many replicas, reads the URL from a Secret, and adds HPA and PDB."""
    kinds = render(
        {
            "replicaCount": 3,
            "store": {"mode": "postgresql", "postgresql": {"existingSecret": "db", "key": "url"}},
            "keys": {"existingSecret": "gw-keys"},
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
        }
    )
    (deployment,) = kinds["Deployment"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert "PersistentVolumeClaim" not in kinds
    assert kinds["PodDisruptionBudget"][0]["spec"]["minAvailable"] == 1
    store = env(container(kinds))["HITL_STORE"]
    assert store == {"secretKeyRef": {"name": "db", "key": "url"}}
    no_hpa = render(
        {
            "replicaCount": 3,
            "store": {"mode": "postgresql", "postgresql": {"existingSecret": "db"}},
            "keys": {"existingSecret": "gw-keys"},
        }
    )
    assert no_hpa["Deployment"][0]["spec"]["replicas"] == 3


def test_tls_mounts_the_secret() -> None:
    """With TLS on, the certificate Secret is mounted and its files passed to the gateway."""
    kinds = render({"tls": {"enabled": True, "secretName": "gw-tls"}})
    c = container(kinds)
    assert env(c)["HITL_TLS_CERT"] == "/etc/hitl-gateway/tls/tls.crt"
    assert "HITL_ALLOW_INSECURE" not in env(c)
    assert env(container(render({})))["HITL_ALLOW_INSECURE"] == "1"
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = {v["name"]: v for v in kinds["Deployment"][0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "gw-tls"


def test_optional_network_policy_and_service_monitor() -> None:
    """NetworkPolicy and ServiceMonitor appear only when enabled."""
    kinds = render({"networkPolicy": {"enabled": True}, "serviceMonitor": {"enabled": True}})
    assert kinds["NetworkPolicy"][0]["spec"]["policyTypes"] == ["Ingress"]
    assert kinds["ServiceMonitor"][0]["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "NetworkPolicy" not in render({})


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"store": {"mode": "mysql"}}, "/store/mode"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"grpc": {"port": 70000}}, "/grpc/port"),
        ({"imag": {}}, "imag"),
        ({"logLevel": "verbose"}, "/logLevel"),
    ],
)
def test_schema_rejects_invalid_values(values: dict[str, Any], where: str) -> None:
    """Invalid values are refused by values.schema.json, naming the key."""
    with pytest.raises(helm.HelmValuesError, match=where):
        helm.Chart.load(str(CHART)).validate_schema(values)


def test_plaintext_must_be_allowed_or_tls_enabled() -> None:
    """Refusing plaintext without enabling TLS fails to render instead of a pod that won't start."""
    with pytest.raises(helm.HelmError, match="allowPlaintext"):
        helm.Chart.load(str(CHART)).render({"tls": {"allowPlaintext": False}}, name="bank")


def test_postgresql_mode_requires_the_secret() -> None:
    """PostgreSQL mode without a database Secret fails to render with a clear message."""
    with pytest.raises(helm.HelmError, match=r"store\.postgresql\.existingSecret is required"):
        helm.Chart.load(str(CHART)).render({"store": {"mode": "postgresql"}}, name="bank")


def test_dockerfile_matches_the_chart() -> None:
    """The image runs as the chart's user with the chart's entry point and paths."""
    text = (ROOT / "Dockerfile").read_text()
    c = container(render({}))
    assert c["args"] == ["serve"]
    assert 'ENTRYPOINT ["hitl-gateway"]' in text
    assert "USER 10001:10001" in text
    assert "HITL_DATA_DIR=/var/lib/hitl-gateway" in text


@pytest.mark.parametrize(
    ("cpu", "workers"), [("500m", "1"), ("2", "2"), ("1500m", "2"), (4, "4"), ("250m", "1")]
)
def test_workers_follow_the_cpu_request(cpu: str | int, workers: str) -> None:
    """One worker process per requested CPU, rounded up; an explicit count wins."""
    resources = {"requests": {"cpu": cpu, "memory": "256Mi"}}
    assert env(container(render({"resources": resources})))["HITL_WORKERS"] == workers
    explicit = render({"resources": resources, "workers": 3})
    assert env(container(explicit))["HITL_WORKERS"] == "3"
