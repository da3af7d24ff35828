"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (no Compose binary, no
engine), every reference in it resolves, and its shape is the one the trial relies on: start order,
two gateways, secrets mounted read-only, none written inline.

The schema is the Compose Specification's own schema/compose-spec.json (github.com/compose-spec/
compose-spec, Apache-2.0), as the pinned dev dependency check-jsonschema ships it (its vendored copy,
with the licence beside it); jsonschema validates against it (Draft 2020-12)."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from service.settings import Settings
from tests.deploy.tools import DEPLOY, ROOT, find_tool, run

COMPOSE_FILE = DEPLOY / "compose.yaml"
PEERLINK_SERVICES = {"migrate", "gateway-1", "gateway-2", "worker", "sandbox"}
EXPORT_DIR = "/var/lib/peerlink/exports"
TRIAL_DATABASE_URL = "postgresql+asyncpg://peerlink:peerlink@postgres:5432/peerlink"
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|API_KEY", re.IGNORECASE)
# The trial database's own credentials: documented, and the database is never published on the host.
ALLOWED_INLINE = {("postgres", "POSTGRES_PASSWORD"): "peerlink"}


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, from the check-jsonschema package (.[dev])."""
    path = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def compose_problems(document: Any) -> list[str]:
    """What Compose would refuse in a loaded compose file: the schema's errors, then the references the
    schema cannot check (depends_on, named volumes, networks, secrets and configs that are not declared)."""
    validator = Draft202012Validator(compose_schema())
    problems = [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems or not isinstance(document, dict):
        return problems
    services = document.get("services") or {}
    declared = {kind: set(document.get(kind) or {}) for kind in ("volumes", "networks", "secrets", "configs")}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends if isinstance(depends, dict | list) else ():
            if target not in services:
                problems.append(f"services.{name}.depends_on: {target!r} is not a service")
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            named = ":" in volume if isinstance(volume, str) else volume.get("type") == "volume"
            if named and source and not source.startswith((".", "/", "~", "$")) and source not in declared["volumes"]:
                problems.append(f"services.{name}.volumes: {source!r} is not a declared volume")
        for kind in ("networks", "secrets", "configs"):
            for item in service.get(kind) or []:
                ref = item if isinstance(item, str) else item.get("source", "")
                if ref and ref not in declared[kind] and not (kind == "networks" and ref == "default"):
                    problems.append(f"services.{name}.{kind}: {ref!r} is not declared")
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, please (easier to check and to read)"
    return {str(k): str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    found = service.get("depends_on", {})
    assert isinstance(found, dict), "depends_on in the long form, with a condition"
    return {name: spec["condition"] for name, spec in found.items()}


# --- the Compose Specification -------------------------------------------------------------------------


def test_the_schema_is_the_compose_specification() -> None:
    schema = compose_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks", "secrets"} <= set(schema["properties"])


def test_compose_accepts_the_file(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_compose_rejects_a_broken_file() -> None:
    """The check above can fail: a dependency on a service that does not exist is refused."""
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["worker"]["depends_on"]["nowhere"] = {"condition": "service_started"}
    assert compose_problems(broken) == ["services.worker.depends_on: 'nowhere' is not a service"]


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("services", "worker", "restart_policy"), "always", "services.worker"),
        (("services", "worker", "depends_on", "postgres", "condition"), "service_ready", "services.worker.depends_on"),
        (("services", "gateway-1", "read_only"), ["yes"], "services.gateway-1.read_only"),
        (("services", "postgres", "healthcheck", "retries"), {"n": 12}, "services.postgres.healthcheck.retries"),
        (("secrets",), ["not", "a", "mapping"], "secrets"),
    ],
    ids=["unknown-key", "bad-condition", "not-a-boolean", "not-a-number", "not-a-mapping"],
)
def test_the_schema_refuses_what_compose_refuses(path: tuple[str, ...], value: Any, where: str) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = compose_problems(broken)
    assert problems, f"{'.'.join(path)} = {value!r} was accepted"
    assert any(problem.startswith(where) for problem in problems), problems


def test_undeclared_references_are_refused() -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["postgres"]["volumes"] = ["pgdata2:/var/lib/postgresql/data"]
    broken["services"]["worker"]["networks"] = ["backend"]
    broken["services"]["worker"]["secrets"] = ["ehr-key"]
    assert compose_problems(broken) == [
        "services.postgres.volumes: 'pgdata2' is not a declared volume",
        "services.worker.networks: 'backend' is not declared",
        "services.worker.secrets: 'ehr-key' is not declared",
    ]


# --- shape -------------------------------------------------------------------------------------------


def test_the_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", *PEERLINK_SERVICES}
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
    assert str(services["postgres"]["image"]).startswith("postgres:15")


def test_peerlink_services_build_the_one_image(services: dict[str, dict[str, Any]]) -> None:
    for name in PEERLINK_SERVICES:
        service = services[name]
        assert service["image"] == "peerlink:local", name
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert (COMPOSE_FILE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == ["migrate"]
    assert services["gateway-1"]["command"] == services["gateway-2"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["sandbox"]["command"] == ["sandbox", "--host", "0.0.0.0", "--port", "9090"]


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert "healthcheck" in services["postgres"]
    for name in ("gateway-1", "gateway-2", "worker"):
        assert depends_on(services[name]) == {
            "postgres": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name
    assert services["migrate"].get("restart") == "no"


def test_health_checks_fit_each_role(services: dict[str, dict[str, Any]]) -> None:
    """The image's HEALTHCHECK asks the gateway port: the gateways keep it, the others replace or drop it."""
    for name in ("gateway-1", "gateway-2"):
        assert "healthcheck" not in services[name], name
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert "9090" in " ".join(services["sandbox"]["healthcheck"]["test"])


def test_two_gateways_on_two_host_ports(services: dict[str, dict[str, Any]]) -> None:
    published = {name: services[name]["ports"] for name in ("gateway-1", "gateway-2")}
    assert published == {"gateway-1": ["127.0.0.1:8081:8080"], "gateway-2": ["127.0.0.1:8082:8080"]}
    assert "ports" not in services["postgres"], "the trial database stays on the compose network"


def test_environment(services: dict[str, dict[str, Any]]) -> None:
    for name in ("migrate", "gateway-1", "gateway-2", "worker"):
        env = environment(services[name])
        assert env["PEERLINK_DATABASE_URL"] == TRIAL_DATABASE_URL, name
        assert env["PEERLINK_LOG_JSON"] == "true", name
    assert environment(services["sandbox"])["PEERLINK_LOG_JSON"] == "true"


def test_every_peerlink_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    settings = {f"PEERLINK_{name.upper()}" for name in Settings.model_fields}
    used = {key for s in services.values() for key in environment(s) if key.startswith("PEERLINK_")}
    assert used - settings == set(), "compose sets variables no setting reads"


def test_secrets_are_read_only_mounts_from_deploy_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name in ("gateway-1", "gateway-2", "worker"):
        volumes = services[name]["volumes"]
        assert "./secrets/keys:/var/lib/peerlink/keys:ro" in volumes, name
        for volume in volumes:
            source = volume.split(":")[0]
            if source.startswith("./secrets/"):
                assert volume.endswith(":ro"), f"{name}: {volume} must be read-only"
        assert environment(services[name])["PEERLINK_KEYS_DIR"] == "/var/lib/peerlink/keys"


def test_export_files_go_to_one_writable_volume_every_role_shares(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The root file system is read-only: without a volume at PEERLINK_EXPORT_DIR every export would end
    as a failed job. One named volume, writable, mounted by both gateways (either serves a download)
    and the worker (it runs the jobs)."""
    assert "exports" in compose["volumes"]
    for name in ("gateway-1", "gateway-2", "worker"):
        service = services[name]
        assert service["read_only"] is True, name
        assert environment(service)["PEERLINK_EXPORT_DIR"] == EXPORT_DIR, name
        mounts = [v for v in service["volumes"] if v.split(":")[1] == EXPORT_DIR]
        assert mounts == [f"exports:{EXPORT_DIR}"], f"{name}: {mounts} (named volume, not :ro)"
        assert "PEERLINK_EXPORT_S3_BUCKET" not in environment(service), name


def test_the_export_mount_point_belongs_to_the_image_user() -> None:
    """A new named volume copies the ownership of the image's directory: uid 10001 must own it."""
    dockerfile = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (install,) = re.findall(r"install -d -o 10001 -g 10001 [^\n]*", dockerfile)
    assert EXPORT_DIR in install, install


def test_no_secret_value_inline(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAMES.search(key) and not key.endswith("_FILE"):
                assert ALLOWED_INLINE.get((name, key)) == value, f"{name}: {key} holds a secret inline"
            if key.endswith("_URL"):
                password = re.match(r"^[a-z+]+://[^:/@]+:([^@]+)@", value)
                assert password is None or value == TRIAL_DATABASE_URL, f"{name}: {key} carries a password"
    text = COMPOSE_FILE.read_text()
    for marker in ("PRIVATE KEY", '"kty"', "kty:"):
        assert marker not in text


def test_hardening(services: dict[str, dict[str, Any]]) -> None:
    for name in PEERLINK_SERVICES:
        service = services[name]
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_deploy_secrets_is_gitignored() -> None:
    git = find_tool("git", "apt-get install git")
    ignored = run([git, "check-ignore", "-q", "deploy/secrets/keys/signing-keys.json"], cwd=ROOT)
    assert ignored.returncode == 0, "deploy/secrets/ must be in .gitignore (all but its README)"
    kept = run([git, "check-ignore", "-q", "deploy/secrets/README.md"], cwd=ROOT)
    assert kept.returncode == 1, "deploy/secrets/README.md should stay tracked"
