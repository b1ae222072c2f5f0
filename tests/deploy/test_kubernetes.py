"""The Kubernetes manifests (``deploy/kubernetes``): valid for the API versions we support,
one Deployment and Service per platform service, every pod unprivileged and probed, the
gateway scaled and protected, only the gateway reachable from outside, no secret values."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from m3o.runtime.config import build_config
from support.deploy_files import (
    KUBERNETES,
    Manifest,
    manifests,
    pod_templates,
    secret_environment_names,
    service_names,
)

OLDEST_KUBERNETES = "1.27"
"""The oldest Kubernetes the manifests support: gRPC probes are generally available from it."""
NAMESPACE = "m3o"
GRPC_PORT = 9090
GATEWAY_PORT = 8080
METRICS_PORT = 9091


def _by_kind(kind: str) -> dict[str, Manifest]:
    return {m.name: m for m in manifests() if m.kind == kind}


def _container(manifest: Manifest) -> dict[str, Any]:
    containers = manifest.body["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, manifest
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_for_the_supported_kubernetes_versions(version: str) -> None:
    for manifest in manifests():
        try:
            kubernetes_validate.validate(manifest.body, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{manifest} on Kubernetes {version}: {exc.message} at {exc.path}")


def test_every_manifest_is_in_the_namespace_the_kustomization_sets() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    for manifest in manifests():
        if manifest.kind == "Namespace":
            assert manifest.name == NAMESPACE
        else:
            assert manifest.body["metadata"].get("namespace") == NAMESPACE, manifest


def test_the_kustomization_lists_every_manifest_file() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {
        str(path.relative_to(KUBERNETES))
        for path in KUBERNETES.rglob("*.yaml")
        if path.name != "kustomization.yaml"
    }
    assert sorted(kustomization["resources"]) == sorted(files)


def test_kustomize_renders_every_resource_with_the_released_image() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render the manifests"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    resources = [r for r in yaml.safe_load_all(rendered) if r]
    assert sorted((r["kind"], r["metadata"]["name"]) for r in resources) == sorted(
        (m.kind, m.name) for m in manifests()
    )
    images = {
        c["image"]
        for r in resources
        if r["kind"] in ("Deployment", "Job")
        for c in r["spec"]["template"]["spec"]["containers"]
    }
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert images == {f"{image['name']}:{image['newTag']}"}


def test_every_platform_service_has_a_deployment_and_a_grpc_service() -> None:
    deployments = _by_kind("Deployment")
    services = _by_kind("Service")
    expected = service_names()
    assert set(deployments) == expected | {"gateway"}, "one Deployment per service, and gateway"
    assert set(services) == expected | {"gateway"}, "one Service per service, and gateway"
    for name in expected:
        container = _container(deployments[name])
        assert container["args"] == ["run", name]
        assert {"name": "grpc", "containerPort": GRPC_PORT} in container["ports"]
        service = services[name].body["spec"]
        assert service["selector"] == deployments[name].body["spec"]["selector"]["matchLabels"]
        assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(GRPC_PORT, "grpc")]


def test_the_address_template_names_the_services_as_their_kubernetes_services() -> None:
    (config,) = [m for m in manifests() if m.kind == "ConfigMap"]
    template = config.body["data"]["M3O_SERVER__SERVICE_ADDRESS_TEMPLATE"]
    services = _by_kind("Service")
    for name in service_names():
        host, port = template.replace("{service}", name).rsplit(":", 1)
        assert host in services, f"{name} is reached at {host}, which no Service names"
        assert int(port) == GRPC_PORT


def test_the_configmap_is_a_valid_configuration_that_listens_in_the_pod() -> None:
    (config,) = [m for m in manifests() if m.kind == "ConfigMap"]
    environment = dict(config.body["data"])
    loaded = build_config({}, environment)  # an unknown or bad key raises, naming it
    assert loaded.server.host == "0.0.0.0"
    assert loaded.server.grpc_port == GRPC_PORT
    assert loaded.server.port == GATEWAY_PORT
    assert loaded.server.metrics_port == METRICS_PORT


def test_services_are_probed_on_grpc_health_and_the_gateway_on_its_health_endpoints() -> None:
    for name, deployment in _by_kind("Deployment").items():
        container = _container(deployment)
        probes = {p: container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
        if name == "gateway":
            paths = {p: probe["httpGet"]["path"] for p, probe in probes.items()}
            assert paths == {
                "startupProbe": "/healthz",
                "readinessProbe": "/readyz",
                "livenessProbe": "/healthz",
            }
        else:
            assert all(probe["grpc"] == {"port": GRPC_PORT} for probe in probes.values()), name


def test_every_pod_runs_unprivileged_on_a_read_only_root_with_bounded_resources() -> None:
    for manifest, pod in pod_templates():
        assert pod["automountServiceAccountToken"] is False, manifest
        assert pod["securityContext"]["runAsNonRoot"] is True, manifest
        assert pod["securityContext"]["runAsUser"] > 0, manifest
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, manifest
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, manifest
            assert context["allowPrivilegeEscalation"] is False, manifest
            assert context.get("privileged", False) is False, manifest
            assert context["capabilities"] == {"drop": ["ALL"]}, manifest
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, manifest
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp is writable, the rest is not"


def test_no_manifest_holds_a_secret_value() -> None:
    secrets = secret_environment_names()
    assert not [m for m in manifests() if m.kind == "Secret"], "Secrets are the operator's"
    (config,) = [m for m in manifests() if m.kind == "ConfigMap"]
    assert not secrets & set(config.body["data"]), "secret settings in the ConfigMap"
    for manifest, pod in pod_templates():
        for container in pod["containers"]:
            for variable in container.get("env", []):
                if variable["name"] in secrets:
                    assert "secretKeyRef" in variable["valueFrom"], (manifest, variable["name"])
            for source in container.get("envFrom", []):
                assert set(source) <= {"configMapRef", "secretRef"}, manifest


def test_each_service_reads_only_the_common_secret_and_its_own() -> None:
    for name, deployment in _by_kind("Deployment").items():
        sources = _container(deployment)["envFrom"]
        secrets = [s["secretRef"] for s in sources if "secretRef" in s]
        assert secrets == [
            {"name": "m3o-common"},
            {"name": f"m3o-{name}", "optional": True},
        ], name


def test_the_migrations_job_runs_m3o_migrate_with_the_database_url_only() -> None:
    (job,) = [m for m in manifests() if m.kind == "Job"]
    container = _container(job)
    assert container["args"] == ["migrate"]
    secret_variables = [v["name"] for v in container["env"] if "valueFrom" in v]
    assert secret_variables == ["M3O_DATABASE__URL"]
    assert "envFrom" not in container
    assert job.body["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_gateway_scales_on_cpu_and_keeps_pods_through_disruptions() -> None:
    gateway = _by_kind("Deployment")["gateway"]
    pods = gateway.body["spec"]["selector"]["matchLabels"]
    assert "replicas" not in gateway.body["spec"], "the autoscaler owns the replica count"
    (autoscaler,) = [m for m in manifests() if m.kind == "HorizontalPodAutoscaler"]
    spec = autoscaler.body["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert spec["minReplicas"] >= 2
    assert spec["maxReplicas"] > spec["minReplicas"]
    (budget,) = [m for m in manifests() if m.kind == "PodDisruptionBudget"]
    assert budget.body["spec"]["selector"]["matchLabels"] == pods
    assert budget.body["spec"]["maxUnavailable"] < spec["minReplicas"]


def _open_ports(policies: list[dict[str, Any]], labels: dict[str, str]) -> set[int]:
    """Ports of a pod with ``labels`` that pods outside the platform may reach."""

    def selects(selector: dict[str, Any]) -> bool:
        wanted = selector.get("matchLabels", {})
        return all(labels.get(k) == v for k, v in wanted.items())

    def from_outside(rule: dict[str, Any]) -> bool:
        peers = rule.get("from")
        if not peers:
            return True  # no "from": every source
        # A peer is in the namespace only as a bare pod selector.
        return any(set(peer) != {"podSelector"} for peer in peers)

    opened: set[int] = set()
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not selects(spec["podSelector"]):
            continue
        for rule in spec.get("ingress", []):
            if from_outside(rule):
                opened |= {p["port"] for p in rule["ports"]}
    return opened


def test_only_the_gateway_is_reachable_from_outside_the_platform() -> None:
    policies = [m.body for m in manifests() if m.kind == "NetworkPolicy"]
    deny_all = [
        p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
    ]
    assert deny_all, "a default-deny ingress policy selects every pod"
    for name, deployment in _by_kind("Deployment").items():
        labels = deployment.body["spec"]["template"]["metadata"]["labels"]
        opened = _open_ports(policies, labels)
        if name == "gateway":
            assert opened == {GATEWAY_PORT}
        else:
            assert opened <= {METRICS_PORT}, f"{name}: only its metrics, to Prometheus"
