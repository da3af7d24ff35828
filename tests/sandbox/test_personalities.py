"""Each personality's quirks: epic-like (RS384 only, JWKS URL only, opaque tokens, no Encounter writes)
and oracle-like (tenant in the path, an open read-only endpoint beside the secured one)."""

from __future__ import annotations

import jwt
import pytest

from mappings.models import validate
from service.sandbox import Personality
from service.sandbox.config import DEFAULT_TENANT
from tests.auth_support import ec_key, rsa_key
from tests.sandbox.support import ADMIN_SECRET, FHIR_JSON, ROOT

ENCOUNTER = {
    "resourceType": "Encounter",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
}


@pytest.fixture
def epic(make_sandbox):
    return make_sandbox(personality=Personality.EPIC)


@pytest.fixture
def oracle(make_sandbox):
    return make_sandbox(personality=Personality.ORACLE)


async def test_epic_paths_and_discovery(epic):
    assert epic.fhir == "/api/FHIR/R4"
    document = (await epic.http.get("/api/FHIR/R4/.well-known/smart-configuration")).json()
    assert document["token_endpoint"] == f"{ROOT}/oauth2/token"
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384"]
    assert (await epic.http.get("/fhir/metadata")).status_code == 404


async def test_epic_requires_a_jwks_url(epic):
    headers = {"X-Sandbox-Admin": ADMIN_SECRET}
    inline = {"client_id": "inline", "scopes": "system/*.rs", "jwks": rsa_key().jwks}
    refused = await epic.http.post("/admin/clients", json=inline, headers=headers)
    assert refused.status_code == 400
    assert "JWK Set URL" in refused.json()["issue"][0]["diagnostics"]
    by_url = {"client_id": "by-url", "scopes": "system/*.rs", "jwks_url": f"https://keys.example/{rsa_key().kid}.json"}
    assert (await epic.http.post("/admin/clients", json=by_url, headers=headers)).status_code == 201
    assert (await epic.token_response("by-url", rsa_key())).status_code == 200


async def test_epic_refuses_es384_and_an_unfetchable_jwks_url(epic):
    epic.register("es-client", "system/*.rs", ec_key())
    response = await epic.token_response("es-client", ec_key())
    assert response.status_code == 401
    assert "RS384" in response.json()["error_description"]
    headers = {"X-Sandbox-Admin": ADMIN_SECRET}
    gone = {"client_id": "gone", "scopes": "system/*.rs", "jwks_url": "https://keys.example/missing.json"}
    await epic.http.post("/admin/clients", json=gone, headers=headers)
    unfetchable = await epic.token_response("gone", rsa_key())
    assert unfetchable.status_code == 401
    assert "could not be fetched" in unfetchable.json()["error_description"]


async def test_epic_tokens_are_opaque(epic):
    token = await epic.token()
    assert "." not in token and len(token) >= 40
    with pytest.raises(jwt.DecodeError):
        jwt.decode(token, options={"verify_signature": False})
    assert (await epic.get("/Patient", params={"_count": "1"})).status_code == 200
    forged = await epic.http.get("/api/FHIR/R4/Patient", headers={"Authorization": f"Bearer {token}x"})
    assert forged.status_code == 401


async def test_epic_write_limits(epic):
    pid = epic.sandbox.index.patient_ids[0]
    encounter = {**ENCOUNTER, "subject": {"reference": f"Patient/{pid}"}}
    create = await epic.post("/Encounter", encounter)
    assert create.status_code == 405
    assert create.json()["resourceType"] == "OperationOutcome"
    assert create.json()["issue"][0]["code"] == "not-supported"
    existing = epic.sandbox.index.encounter_ids[0]
    update = await epic.put(f"/Encounter/{existing}", {**encounter, "id": existing})
    assert update.status_code == 405
    note = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{pid}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
    }
    created = await epic.post("/DocumentReference", note)
    assert created.status_code == 201
    headers = await epic.headers()
    assert (
        await epic.http.delete(f"/api/FHIR/R4/DocumentReference/{created.json()['id']}", headers=headers)
    ).status_code == 405
    statement = (await epic.http.get("/api/FHIR/R4/metadata")).json()
    validate(statement)
    by_type = {r["type"]: {i["code"] for i in r["interaction"]} for r in statement["rest"][0]["resource"]}
    assert not {"create", "update"} & by_type["Encounter"]
    assert "create" in by_type["DocumentReference"]
    assert all("delete" not in codes for codes in by_type.values())


async def test_oracle_tenant_paths(oracle):
    base = f"/r4/{DEFAULT_TENANT}"
    assert oracle.fhir == base
    assert (await oracle.get("/Patient", params={"_count": "1"})).status_code == 200
    wrong = await oracle.http.get("/r4/other-tenant/Patient", headers=await oracle.headers())
    assert wrong.status_code == 404
    assert wrong.json()["resourceType"] == "OperationOutcome"
    document = (await oracle.http.get(f"{base}/.well-known/smart-configuration")).json()
    assert document["token_endpoint"] == f"{ROOT}/tenants/{DEFAULT_TENANT}/protocols/oauth2/profiles/smart-v1/token"
    assert (await oracle.http.get(f"{base}/Patient")).status_code == 401


async def test_oracle_custom_tenant(make_sandbox):
    ehr = make_sandbox(personality=Personality.ORACLE, tenant="hospital-42")
    assert (await ehr.get("/Organization/peer-program")).status_code == 200
    assert ehr.fhir == "/r4/hospital-42"


async def test_oracle_open_endpoint_is_read_only_without_a_token(oracle):
    open_base = f"/open/r4/{DEFAULT_TENANT}"
    pid = oracle.sandbox.index.patient_ids[0]
    assert (await oracle.http.get(f"{open_base}/Patient/{pid}")).status_code == 200
    assert (await oracle.http.get(f"{open_base}/Patient/{pid}/_history/1")).status_code == 200
    bundle = (await oracle.http.get(f"{open_base}/Patient", params={"identifier": "SBX100000"})).json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["fullUrl"] == f"{ROOT}{open_base}/Patient/{pid}"
    headers = {"Content-Type": FHIR_JSON}
    post = await oracle.http.post(f"{open_base}/Patient", json={"resourceType": "Patient"}, headers=headers)
    assert post.status_code == 405
    bundle_post = await oracle.http.post(
        open_base, json={"resourceType": "Bundle", "type": "transaction"}, headers=headers
    )
    assert bundle_post.status_code == 405
    statement = (await oracle.http.get(f"{open_base}/metadata")).json()
    validate(statement)
    rest = statement["rest"][0]
    assert "security" not in rest and "interaction" not in rest
    assert {i["code"] for r in rest["resource"] for i in r["interaction"]} == {"read", "vread", "search-type"}
    assert oracle.sandbox.store.counts()["Patient"] == 50


async def test_generic_has_no_open_endpoint(ehr):
    assert (await ehr.http.get(f"/open/r4/{DEFAULT_TENANT}/Patient")).status_code == 404
