"""Events recorded by the gateway's own call sites, end to end: tokens issued and refused, 401 and
403, admin actions — and, once the API layer calls the writer (PEERLINK_AUDIT_READS exists), every
FHIR and peer interaction with the patients whose data it returned, and a 503 for a read whose audit
record cannot be written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mappings.ids import fhir_id
from mappings.models import validate
from service.app import create_app
from service.audit.verify import verify
from service.settings import Settings
from tests.audit.conftest import break_audit_writes, login, rows, with_audit_routes
from tests.auth_support import assertion, rsa_key, token_form
from tests.conftest import BASE_URL, TOKEN_URL, register_client
from tests.factories import World

WIRED = "audit_reads" in Settings.model_fields
needs_call_sites = pytest.mark.skipif(
    not WIRED, reason="the API call sites are not wired yet (the audit_reads setting and the write() calls)"
)


async def _last(database, **match: Any) -> dict[str, Any]:
    found = [r for r in await rows(database) if all(r[k] == v for k, v in match.items())]
    assert found, f"no audit record with {match}"
    return found[-1]


async def test_tokens_issued_and_refused(gateway, database, program):
    await login(gateway, database, program, "clinic-app", "system/*.rs", organization="urn:oid:1.2.3|clinic")
    issued = await _last(database, type="security", subtype="token", outcome="0")
    assert (issued["client_id"], issued["organization"], issued["program_id"]) == (
        "clinic-app",
        "urn:oid:1.2.3|clinic",
        program.id,
    )
    assert issued["address"]

    stranger = rsa_key("stranger")
    response = await gateway.post("/auth/token", data=token_form(assertion(stranger, "nobody", TOKEN_URL)))
    assert response.status_code == 401
    refused = await _last(database, type="security", subtype="token", outcome="4")
    assert refused["detail"]["error"] == "invalid_client"
    assert refused["address"]


async def test_401_and_403_are_recorded(gateway, database, program):
    assert (await gateway.get("/fhir/Patient/x")).status_code == 401
    unauthenticated = await _last(database, subtype="access-refused")
    assert (unauthenticated["outcome"], unauthenticated["detail"]["status"]) == ("4", 401)
    assert unauthenticated["client_id"] is None

    reader = await login(gateway, database, program, "encounter-reader", "system/Encounter.rs")
    assert (await gateway.get("/fhir/Patient/x", headers=reader)).status_code == 403
    forbidden = await _last(database, subtype="access-refused", client_id="encounter-reader")
    assert forbidden["detail"]["status"] == 403
    assert "Patient" in forbidden["detail"]["reason"]


async def test_admin_actions_are_recorded(gateway, admin, database):
    body = {"client_id": "new-clinic", "scopes": "system/*.rs", "jwks": rsa_key("new").jwks}
    assert (await gateway.post("/admin/v1/clients", json=body, headers=admin)).status_code == 201
    assert (await gateway.post("/admin/v1/clients/new-clinic/disable", headers=admin)).status_code == 200
    added = await _last(database, subtype="client-add")
    disabled = await _last(database, subtype="client-disable")
    assert (added["type"], added["action"], added["client_id"], added["detail"]) == (
        "admin",
        "C",
        "privacy-officer",
        {"client": "new-clinic"},
    )
    assert disabled["action"] == "U"


async def test_what_the_call_sites_record_is_served_as_valid_audit_events(gateway, admin, database, program):
    assert (await gateway.get("/fhir/Patient/x")).status_code == 401
    response = await gateway.get("/fhir/AuditEvent?_count=500", headers=admin)
    bundle = response.json()
    assert response.status_code == 200
    types = {e["resource"]["type"]["code"] for e in bundle["entry"]}
    assert {"110114", "110113"} <= types
    for entry in bundle["entry"]:
        validate(entry["resource"])
    assert (await verify(database)).ok


# --- the API layer's call sites (skipped until wired) --------------------------------------------------------


@pytest.fixture
async def world(gateway, admin, program):
    gateway.headers.update(admin)
    built = await World(gateway).build()
    return built, fhir_id(program.identifier_system, "participant", built.ids["participant"])


@needs_call_sites
async def test_fhir_interactions_are_recorded_with_the_patients_returned(gateway, database, program, world):
    _, pid = world
    checks = [
        (f"/fhir/Patient/{pid}", "read"),
        (f"/fhir/Patient/{pid}/_history/1", "vread"),
        (f"/fhir/Patient/{pid}/_history", "history"),
        (f"/fhir/Encounter?patient={pid}", "search"),
    ]
    for url, subtype in checks:
        response = await gateway.get(url)
        assert response.status_code == 200, response.text
        found = await _last(database, type="rest", subtype=subtype)
        assert (found["outcome"], found["client_id"], found["program_id"]) == ("0", "privacy-officer", program.id)
        assert pid in found["detail"]["patients"], (subtype, found["detail"])
    search = await _last(database, type="rest", subtype="search")
    assert "patient=" in search["detail"]["query"]
    assert any(e.startswith("Encounter/") for e in search["detail"]["entities"])
    assert (await verify(database)).ok


@needs_call_sites
async def test_peer_interactions_are_recorded(gateway, database, world):
    built, pid = world
    assert (await gateway.get(f"/peer/v1/participants/{built.ids['participant']}")).status_code == 200
    read = await _last(database, type="rest", subtype="peer-read")
    assert pid in read["detail"]["patients"]
    created = await _last(database, type="rest", subtype="peer-create")
    assert created["action"] == "C"


@needs_call_sites
async def test_reads_are_not_recorded_when_switched_off(settings, database, program, world):
    _, pid = world
    quiet = settings.model_copy(update={"audit_reads": False})
    app = with_audit_routes(create_app(quiet, database))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        key = await register_client(database, program, "bench", "system/*.rs")
        token = (await http.post("/auth/token", data=token_form(assertion(key, "bench", TOKEN_URL)))).json()
        before = len(await rows(database))
        response = await http.get(f"/fhir/Patient/{pid}", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert response.status_code == 200
    assert len(await rows(database)) == before


@needs_call_sites
async def test_a_read_whose_audit_cannot_be_written_fails_with_503(gateway, database, world, monkeypatch):
    _, pid = world

    break_audit_writes(monkeypatch)
    response = await gateway.get(f"/fhir/Patient/{pid}")
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "resourceType" in response.json() and response.json()["resourceType"] == "OperationOutcome"
