"""deploy/kubernetes/: valid against the Kubernetes schemas, and safe to run in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hub.config import HubConfig
from tests.deploy.deploy_files import KUBE_DIR, KUBE_NOT_APPLIED, load_yaml_documents, pod_specs

# The oldest Kubernetes minor release the manifests promise to work on (schemas shipped offline
# by the kubernetes-validate package; strict mode rejects unknown fields, i.e. typos).
KUBERNETES_VERSION = "1.29"
ROLES = {"gateway", "core", "relay", "connector"}


def _by_kind(objects: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [obj for _, obj in objects if obj["kind"] == kind]


def test_every_manifest_validates_against_the_kubernetes_schema(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    assert len(kube_objects) >= 10
    for filename, obj in kube_objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{filename} {obj['kind']}/{obj['metadata']['name']}: {exc.message}")


def test_the_schema_check_would_catch_a_misspelt_probe(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    deployment = _by_kind(kube_objects, "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_examples() -> None:
    kustomization = yaml.safe_load((KUBE_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = set(kustomization["resources"])
    on_disk = {p.name for p in KUBE_DIR.glob("*.yaml")} - KUBE_NOT_APPLIED
    assert resources == on_disk
    assert "secret.example.yaml" not in resources
    assert kustomization["namespace"] == "stock-hub"


def test_a_deployment_per_role_with_probes_resources_and_a_non_root_context(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    deployments = _by_kind(kube_objects, "Deployment")
    roles = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in deployments
    }
    assert roles == ROLES
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        assert container["ports"][0]["containerPort"] == 8080, name


def test_every_pod_runs_non_root_without_privileges(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    specs = list(pod_specs(kube_objects))
    assert specs
    for name, pod in specs:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            # A read-only root needs somewhere to write: HUB_VAR_DIR and /tmp.
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/app/var", "/tmp"} <= mounts, name


def test_gateway_service_selects_the_gateway_pods(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    (service,) = _by_kind(kube_objects, "Service")
    selector = service["spec"]["selector"]
    matching = [
        d["metadata"]["name"]
        for d in _by_kind(kube_objects, "Deployment")
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert matching == ["hub-gateway"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_core_autoscales_on_consumer_lag_up_to_one_replica_per_partition(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    (hpa,) = _by_kind(kube_objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hub-core",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "kafka_consumergroup_group_max_lag"
    env = next(c for c in _by_kind(kube_objects, "ConfigMap") if c["metadata"]["name"] == "hub-env")
    assert hpa["spec"]["maxReplicas"] == int(env["data"]["HUB_TOPIC_PARTITIONS"])
    core = next(
        d for d in _by_kind(kube_objects, "Deployment") if d["metadata"]["name"] == "hub-core"
    )
    assert hpa["spec"]["minReplicas"] <= core["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def test_prometheus_adapter_serves_the_metric_the_autoscaler_reads() -> None:
    values = yaml.safe_load((KUBE_DIR / "prometheus-adapter-rules.yaml").read_text())
    served = {rule["name"]["as"] for rule in values["rules"]["external"]}
    assert "kafka_consumergroup_group_max_lag" in served


def test_disruption_budgets_select_running_pods(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    budgets = _by_kind(kube_objects, "PodDisruptionBudget")
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in _by_kind(kube_objects, "Deployment")
    ]
    covered = set()
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        matches = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert len(matches) == 1, budget["metadata"]["name"]
        covered.add(matches[0]["app.kubernetes.io/component"])
    assert {"gateway", "core"} <= covered


def test_migration_job_runs_upgrade_then_topics(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    (job,) = _by_kind(kube_objects, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(container["args"])
    assert script.index("hub db upgrade") < script.index("hub topics ensure")
    assert "&&" in script, "topics must not be ensured after a failed migration"


def test_config_map_holds_a_hub_toml_the_settings_accept(
    kube_objects: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    config = next(
        c for c in _by_kind(kube_objects, "ConfigMap") if c["metadata"]["name"] == "hub-config"
    )
    path = tmp_path / "hub.toml"
    path.write_text(config["data"]["hub.toml"])
    loaded = HubConfig.load(path)
    assert loaded.accounts, "no account configured"
    for account in loaded.accounts.values():
        for key in ("webhook_secret", "api_token"):
            value = getattr(account, key)
            assert value is None or value.startswith("env:"), f"{key} is a literal secret"


def test_pods_mount_the_config_and_take_secrets_from_a_secret_reference(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    (example,) = load_yaml_documents(KUBE_DIR / "secret.example.yaml")
    assert "EXAMPLE" in (KUBE_DIR / "secret.example.yaml").read_text().splitlines()[0]
    assert all(v == "CHANGE-ME" or "CHANGE-ME" in v for v in example["stringData"].values())
    assert not _by_kind(kube_objects, "Secret") or all(
        filename == "secret.example.yaml"
        for filename, obj in kube_objects
        if obj["kind"] == "Secret"
    )
    for name, pod in pod_specs(kube_objects):
        (container,) = pod["containers"]
        refs = {
            (kind, source[kind]["name"])
            for source in container["envFrom"]
            for kind in ("configMapRef", "secretRef")
            if kind in source
        }
        assert ("secretRef", example["metadata"]["name"]) in refs, name
        assert ("configMapRef", "hub-env") in refs, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "hub-config", name


def test_relay_and_migrations_bypass_the_transaction_pooler(
    kube_objects: list[tuple[str, dict[str, Any]]],
) -> None:
    # Session advisory locks (relay leader election) and migrations need one server connection;
    # pgbouncer's transaction pooling would hand each transaction a different one.
    (example,) = load_yaml_documents(KUBE_DIR / "secret.example.yaml")
    direct = {}
    for name, pod in pod_specs(kube_objects):
        (container,) = pod["containers"]
        for env in container.get("env", []):
            if env["name"] == "HUB_DATABASE_URL":
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] == example["metadata"]["name"], name
                assert ref["key"] in example["stringData"], name
                direct[name] = ref["key"]
    assert set(direct) == {"Deployment/hub-relay", "Job/hub-migrate"}
    assert "pgbouncer" not in example["stringData"][direct["Job/hub-migrate"]]
    assert "pgbouncer" in example["stringData"]["HUB_DATABASE_URL"]
