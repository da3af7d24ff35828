"""The resource server: every /fhir (but metadata), /peer and /admin request needs a valid bearer token
of a registered, enabled client, and the token's scopes decide the types and interactions. Every
401 and 403 is answered in the API's error format and recorded in the audit log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from service.app import create_app
from service.auth.keys import SigningKeys
from service.store.tables import audit_log, auth_clients, referrals
from tests.auth_support import fetch_token, rsa_key
from tests.conftest import BASE_URL, TOKEN_URL, register_client, token_headers
from tests.factories import World

FHIR = "application/fhir+json"
PROBLEM = "application/problem+json"
READER = "program-reader"


# --- helpers ---------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def gateway_key(settings) -> RSAKey:
    """The gateway's own token-signing key (what only the gateway should hold)."""
    key: RSAKey = SigningKeys(settings.keys_dir).signing().keys[0]  # type: ignore[assignment]
    return key


def access_claims(client_id: str | None = READER, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": BASE_URL,
        "aud": BASE_URL,
        "sub": client_id,
        "client_id": client_id,
        "scope": "system/*.cruds",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def mint(key: RSAKey, claims: dict[str, Any], **header: Any) -> str:
    """An access token signed with ``key`` (the gateway's, or an impostor's)."""
    full = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **header}
    sent = {k: v for k, v in full.items() if v is not None}
    return jose_jwt.encode(sent, claims, key, algorithms=[full["alg"]], default_type=None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refusals(database) -> list[dict[str, Any]]:
    first_key = next(iter(audit_log.primary_key.columns))
    query = (
        select(audit_log)
        .where(audit_log.c.type == "security", audit_log.c.subtype == "access-refused")
        .order_by(audit_log.c.recorded, first_key)
    )
    async with database.read() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


def assert_error(response: httpx.Response, status: int) -> None:
    """The error format of the API the request went to: OperationOutcome under /fhir, problem+json else."""
    assert response.status_code == status, response.text
    body = response.json()
    if response.request.url.path.startswith("/fhir"):
        assert response.headers["content-type"].startswith(FHIR)
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == {401: "login", 403: "forbidden"}[status]
        assert "entry" not in body
    else:
        assert response.headers["content-type"].startswith(PROBLEM)
        assert body["status"] == status
    if status == 401:
        assert re.match(r"^Bearer\b", response.headers["www-authenticate"])


async def expect_refused(
    http: httpx.AsyncClient,
    database,
    method: str,
    path: str,
    status: int,
    *,
    headers: dict[str, str] | None = None,
    client_id: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """The request is refused with ``status`` and exactly one access-refused audit record."""
    before = len(await refusals(database))
    response = await http.request(method, path, headers=headers or {}, **kwargs)
    assert_error(response, status)
    after = await refusals(database)
    assert len(after) == before + 1, "the refusal was not audited"
    record = after[-1]
    assert (record["outcome"], record["action"]) == ("4", "E")
    assert record["detail"]["status"] == status
    assert record["detail"]["path"] == path.split("?")[0]
    assert record["detail"]["method"] == method
    assert record["detail"]["reason"]
    assert record["client_id"] == client_id
    return response


@pytest.fixture
async def reader(database, program) -> None:
    """A registered program client the forged tokens claim to be (so only the token itself is wrong)."""
    await register_client(database, program, READER, "system/*.cruds")


# --- no, malformed and forged tokens ------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Patient/abc", "/peer/v1/participants", "/admin/v1/clients"])
async def test_no_token_is_401(anonymous, database, path):
    await expect_refused(anonymous, database, "GET", path, 401)


async def test_metadata_and_discovery_need_no_token(anonymous):
    assert (await anonymous.get("/fhir/metadata")).status_code == 200
    assert (await anonymous.get("/.well-known/smart-configuration")).status_code == 200
    assert (await anonymous.get("/auth/jwks")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.",
        "Basic cHJvZ3JhbTpzZWNyZXQ=",
        "Token abc",
        "bearer",
    ],
)
@pytest.mark.parametrize("path", ["/fhir/Patient", "/peer/v1/participants"])
async def test_malformed_authorization_is_401(anonymous, database, authorization, path):
    await expect_refused(anonymous, database, "GET", path, 401, headers={"Authorization": authorization})


async def test_a_forged_token_of_the_right_shape_is_accepted_only_when_the_gateway_signed_it(
    anonymous, database, settings, reader
):
    """The control for the forgeries below: the same claims, signed with the gateway's key, work."""
    token = mint(gateway_key(settings), access_claims())
    assert (await anonymous.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    impostor = RSAKey.generate_key(2048, parameters={"kid": str(gateway_key(settings).kid)})
    await expect_refused(
        anonymous, database, "GET", "/fhir/Patient", 401, headers=bearer(mint(impostor, access_claims()))
    )
    other_kid = RSAKey.generate_key(2048, parameters={"kid": "impostor"})
    await expect_refused(
        anonymous, database, "GET", "/peer/v1/participants", 401, headers=bearer(mint(other_kid, access_claims()))
    )


def _alg_none(settings) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": gateway_key(settings).kid}
    return f"{b64json(header)}.{b64json(access_claims())}."


def _hs256_with_public_key(settings) -> str:
    public = gateway_key(settings).as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": gateway_key(settings).kid}
    signing_input = f"{b64json(header)}.{b64json(access_claims())}"
    return f"{signing_input}.{b64url(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())}"


def _tampered_scope(settings) -> str:
    token = mint(gateway_key(settings), access_claims(scope="system/Patient.r"))
    head, _, signature = token.split(".")
    return f"{head}.{b64json(access_claims(scope='system/*.cruds peerlink.admin'))}.{signature}"


FORGERIES = {
    "alg none": _alg_none,
    "HS256 keyed with the gateway's public key": _hs256_with_public_key,
    "payload changed after signing": _tampered_scope,
    "expired": lambda s: mint(gateway_key(s), access_claims(exp=int(time.time()) - 120, iat=int(time.time()) - 420)),
    "not yet valid": lambda s: mint(gateway_key(s), access_claims(nbf=int(time.time()) + 600)),
    "another audience": lambda s: mint(gateway_key(s), access_claims(aud="https://other.example")),
    "another issuer, our key": lambda s: mint(gateway_key(s), access_claims(iss="https://idp.example")),
    "another issuer, its key": lambda s: mint(
        RSAKey.generate_key(2048, parameters={"kid": "idp"}), access_claims(iss="https://idp.example")
    ),
    "no issuer": lambda s: mint(gateway_key(s), access_claims(iss=None)),
    "no exp": lambda s: mint(gateway_key(s), access_claims(exp=None)),
    "no client_id": lambda s: mint(gateway_key(s), access_claims(client_id=None, sub=READER)),
    "no sub": lambda s: mint(gateway_key(s), access_claims(sub=None)),
    "client not registered": lambda s: mint(gateway_key(s), access_claims("nobody", scope="system/*.cruds")),
    "typ JWT, not at+jwt": lambda s: mint(gateway_key(s), access_claims(), typ="JWT"),
    "an id token's typ": lambda s: mint(gateway_key(s), access_claims(), typ="id_token+jwt"),
    "RS384 by an impostor under our kid": lambda s: mint(
        RSAKey.generate_key(2048, parameters={"kid": str(gateway_key(s).kid)}), access_claims(), alg="RS384"
    ),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_token_is_401(anonymous, database, settings, reader, forgery):
    token = FORGERIES[forgery](settings)
    # who the token claims to be is known only once the token verified
    known = forgery == "client not registered"
    await expect_refused(
        anonymous, database, "GET", "/fhir/Patient", 401, headers=bearer(token), client_id="nobody" if known else None
    )


async def test_token_without_typ_is_401(anonymous, database, settings, reader):
    """RFC 9068 section 4: the resource server MUST check typ is at+jwt (README: typ is checked).
    A JWT without typ (an ID token of the same issuer, say) is not an access token."""
    token = mint(gateway_key(settings), access_claims(), typ=None)
    assert "typ" not in json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    await expect_refused(anonymous, database, "GET", "/fhir/Patient", 401, headers=bearer(token))


async def test_a_remembered_token_still_expires(anonymous, database, settings, reader):
    expires = int(time.time()) + 6  # room for the first request on a loaded machine
    token = mint(gateway_key(settings), access_claims(exp=expires))
    assert (await anonymous.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    await asyncio.sleep(max(0.0, expires + 1.1 - time.time()))
    await expect_refused(anonymous, database, "GET", "/fhir/Patient", 401, headers=bearer(token))


async def test_disabled_clients_tokens_stop_working(client, database, program):
    headers = await token_headers(client, database, program, "soon-disabled", "system/Patient.rs")
    assert (await client.get("/fhir/Patient", headers=headers)).status_code == 200
    assert (await client.get("/fhir/Patient", headers=headers)).status_code == 200  # remembered
    assert (await client.post("/admin/v1/clients/soon-disabled/disable")).status_code == 200
    await expect_refused(client, database, "GET", "/fhir/Patient", 401, headers=headers, client_id="soon-disabled")
    await expect_refused(
        client, database, "GET", "/peer/v1/participants", 401, headers=headers, client_id="soon-disabled"
    )
    assert (await client.post("/admin/v1/clients/soon-disabled/enable")).status_code == 200
    assert (await client.get("/fhir/Patient", headers=headers)).status_code == 200


# --- scopes: types and interactions ---------------------------------------------------------------------
@pytest.fixture
async def world(client) -> World:
    return await World(client).build()


async def _first(client: httpx.AsyncClient, resource_type: str) -> dict[str, Any]:
    bundle = (await client.get(f"/fhir/{resource_type}")).json()
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


async def _referral_count(database) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(referrals))).scalar_one())


def _service_request() -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [{"system": "https://hospital.example.org/mrn", "value": "MRN-SCOPE"}],
                "name": [{"family": "Scope", "given": ["Sam"]}],
                "birthDate": "1980-01-01",
            },
            {"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Water", "given": ["Jan"]}]},
            {"resourceType": "Organization", "id": "org", "name": "Scope Clinic"},
        ],
        "status": "active",
        "intent": "order",
        "subject": {"reference": "#pat"},
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {"reference": "#dr"},
        "reasonCode": [{"text": "Isolation"}],
    }


async def test_patient_rs_token(client, database, program, world):
    patient = await _first(client, "Patient")
    encounter = await _first(client, "Encounter")
    headers = await token_headers(client, database, program, "patients-only", "system/Patient.rs")

    assert (await client.get(f"/fhir/Patient/{patient['id']}", headers=headers)).status_code == 200
    assert (await client.get(f"/fhir/Patient/{patient['id']}/_history/1", headers=headers)).status_code == 200
    assert (await client.get(f"/fhir/Patient/{patient['id']}/_history", headers=headers)).status_code == 200
    search = await client.get("/fhir/Patient", headers=headers)
    assert search.status_code == 200
    assert [e["resource"]["id"] for e in search.json()["entry"]] == [patient["id"]]
    posted = await client.post("/fhir/Patient/_search", headers=headers, data={"_id": patient["id"]})
    assert posted.status_code == 200, posted.text

    eid = encounter["id"]
    refused = [
        ("GET", f"/fhir/Encounter/{eid}"),
        ("GET", f"/fhir/Encounter/{eid}/_history/1"),
        ("GET", f"/fhir/Encounter/{eid}/_history"),
        ("GET", "/fhir/Encounter/_history"),
        ("GET", "/fhir/Encounter"),
        ("GET", "/fhir/DocumentReference"),
        ("POST", "/fhir/Encounter/_search"),
    ]
    for method, path in refused:
        response = await expect_refused(client, database, method, path, 403, headers=headers, client_id="patients-only")
        assert "Encounter" in response.text or "DocumentReference" in response.text
    before = await _referral_count(database)
    raw = orjson.dumps(_service_request())
    await expect_refused(
        client,
        database,
        "POST",
        "/fhir/ServiceRequest",
        403,
        headers={**headers, "Content-Type": FHIR},
        content=raw,
        client_id="patients-only",
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": _service_request(), "request": {"method": "POST", "url": "ServiceRequest"}}],
    }
    await expect_refused(
        client,
        database,
        "POST",
        "/fhir",
        403,
        headers={**headers, "Content-Type": FHIR},
        content=orjson.dumps(bundle),
        client_id="patients-only",
    )
    assert await _referral_count(database) == before


async def test_v1_read_scope_reads_and_searches_but_does_not_write(client, database, program, world):
    headers = await token_headers(client, database, program, "v1-reader", "system/*.read")
    for resource_type in ("Patient", "Encounter", "DocumentReference", "ServiceRequest", "Task", "Goal", "Consent"):
        resource = await _first(client, resource_type)
        assert (await client.get(f"/fhir/{resource_type}/{resource['id']}", headers=headers)).status_code == 200
        search = await client.get(f"/fhir/{resource_type}", headers=headers)
        assert search.status_code == 200, (resource_type, search.text)
    before = await _referral_count(database)
    await expect_refused(
        client,
        database,
        "POST",
        "/fhir/ServiceRequest",
        403,
        headers={**headers, "Content-Type": FHIR},
        content=orjson.dumps(_service_request()),
        client_id="v1-reader",
    )
    task = await _first(client, "Task")
    await expect_refused(
        client,
        database,
        "PUT",
        f"/fhir/Task/{task['id']}",
        403,
        headers={**headers, "Content-Type": FHIR},
        content=orjson.dumps({**task, "status": "cancelled", "statusReason": {"text": "moved"}}),
        client_id="v1-reader",
    )
    assert await _referral_count(database) == before
    assert (await client.get(f"/fhir/Task/{task['id']}")).json()["status"] == task["status"]


async def test_task_update_scope_may_put_but_not_read(client, database, program, world):
    task = await _first(client, "Task")
    headers = await token_headers(client, database, program, "task-updater", "system/Task.u")
    changed = {**task, "status": "cancelled", "statusReason": {"text": "The patient moved away"}}
    response = await client.put(
        f"/fhir/Task/{task['id']}",
        headers={**headers, "Content-Type": FHIR, "If-Match": 'W/"1"'},
        content=orjson.dumps(changed),
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert (await client.get(f"/fhir/Task/{task['id']}")).json()["status"] == "cancelled"
    for path in (f"/fhir/Task/{task['id']}", "/fhir/Task", f"/fhir/Task/{task['id']}/_history"):
        await expect_refused(client, database, "GET", path, 403, headers=headers, client_id="task-updater")
    await expect_refused(
        client,
        database,
        "POST",
        "/fhir/Task",
        403,
        headers={**headers, "Content-Type": FHIR},
        content=orjson.dumps(task),
        client_id="task-updater",
    )


async def test_include_of_a_type_the_token_cannot_read_is_left_out(client, database, program, world):
    everything = (await client.get("/fhir/Encounter", params={"_include": "Encounter:patient"})).json()
    assert {e["resource"]["resourceType"] for e in everything["entry"]} == {"Encounter", "Patient"}  # the control
    headers = await token_headers(client, database, program, "encounters-only", "system/Encounter.rs")
    bundle = (await client.get("/fhir/Encounter", params={"_include": "Encounter:patient"}, headers=headers)).json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Encounter"]
    assert {e["resource"]["id"] for e in bundle["entry"]} == {
        e["resource"]["id"] for e in everything["entry"] if e["resource"]["resourceType"] == "Encounter"
    }

    patients = await token_headers(client, database, program, "patients-rs", "system/Patient.rs")
    rev = (await client.get("/fhir/Patient", params={"_revinclude": "Encounter:patient"}, headers=patients)).json()
    assert {e["resource"]["resourceType"] for e in rev["entry"]} == {"Patient"}


async def test_admin_routes_need_the_admin_scope(client, database, program, settings):
    headers = await token_headers(client, database, program, "no-admin", "system/*.cruds")
    async with database.read() as conn:
        registered = (await conn.execute(select(func.count()).select_from(auth_clients))).scalar_one()
    keys_before = SigningKeys(settings.keys_dir).summary()
    refused = [
        ("GET", "/admin/v1/clients", None),
        ("POST", "/admin/v1/clients", {"client_id": "sneaky", "scopes": "system/*.cruds", "jwks": rsa_key().jwks}),
        ("POST", "/admin/v1/clients/program-admin/disable", None),
        ("POST", "/admin/v1/clients/no-admin/enable", None),
        ("GET", "/admin/v1/keys", None),
        ("POST", "/admin/v1/keys/rotate", None),
    ]
    for method, path, body in refused:
        await expect_refused(client, database, method, path, 403, headers=headers, client_id="no-admin", json=body)
    async with database.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(auth_clients))).scalar_one() == registered
    assert SigningKeys(settings.keys_dir).summary() == keys_before
    # the admin token may
    assert (await client.get("/admin/v1/clients")).status_code == 200


# --- the peer API ------------------------------------------------------------------------------------
async def _peer_operations(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    document = (await http.get("/openapi.json")).json()
    operations = []
    for path, item in document["paths"].items():
        if not path.startswith("/peer/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "0123456789abcdef0123456789abcdef", path)
        operations += [(method.upper(), concrete) for method in item if method in ("get", "post", "patch", "put")]
    return operations


async def test_organisation_client_gets_403_on_every_peer_route(client, database, program, world):
    headers = await token_headers(
        client, database, program, "hospital", "system/*.cruds", organization="urn:oid:2.16.840.1.113883.3.1|hosp"
    )
    operations = await _peer_operations(client)
    assert len(operations) > 40
    participant = world.ids["participant"]
    operations += [
        ("GET", f"/peer/v1/participants/{participant}"),
        ("GET", f"/peer/v1/encounters/{world.ids['encounter']}"),
    ]
    for method, path in operations:
        body: dict[str, Any] | None = {} if method in ("POST", "PATCH", "PUT") else None
        await expect_refused(client, database, method, path, 403, headers=headers, client_id="hospital", json=body)


async def test_program_client_scopes_apply_to_the_peer_api(client, database, program, world):
    headers = await token_headers(client, database, program, "sessions-reader", "system/Encounter.rs")
    listed = await client.get("/peer/v1/encounters", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [e["id"] for e in listed.json()["items"]] == [world.ids["encounter"]]
    one = await client.get(f"/peer/v1/encounters/{world.ids['encounter']}", headers=headers)
    assert one.status_code == 200
    before = (await client.get("/peer/v1/encounters")).json()["items"]
    body = {**one.json()}
    await expect_refused(
        client,
        database,
        "POST",
        "/peer/v1/encounters",
        403,
        headers=headers,
        client_id="sessions-reader",
        json={
            "participant_id": body["participant_id"],
            "specialist_id": body["specialist_id"],
            "start": body["start"],
            "end": body["end"],
            "modality": "video",
            "support_categories": ["emotional"],
            "status": "finished",
        },
    )
    await expect_refused(
        client,
        database,
        "PATCH",
        f"/peer/v1/encounters/{world.ids['encounter']}",
        403,
        headers=headers,
        client_id="sessions-reader",
        json={"modality": "in-person"},
    )
    for path in ("/peer/v1/participants", "/peer/v1/notes", f"/peer/v1/participants/{world.ids['participant']}"):
        await expect_refused(client, database, "GET", path, 403, headers=headers, client_id="sessions-reader")
    assert (await client.get("/peer/v1/encounters")).json()["items"] == before


# --- an external issuer (a hospital's IdP) ---------------------------------------------------------------
IDP = "https://idp.hospital.example"
IDP_JWKS = f"{IDP}/jwks"
IDP_ORGANIZATION = "urn:oid:2.16.840.1.113883.3.7001|general-hospital"


@pytest.fixture
async def with_idp(settings, database, program):
    idp_key = RSAKey.generate_key(2048, parameters={"kid": "idp-1", "alg": "RS256"})
    served = {"keys": [idp_key.as_dict(private=False)]}
    external = settings.model_copy(update={"auth_external_issuer": IDP, "auth_external_jwks_url": IDP_JWKS})
    app = create_app(external, database, outbound=httpx.MockTransport(lambda request: httpx.Response(200, json=served)))
    # the hospital's own client, registered for the hospital's data boundary
    await register_client(database, program, "idp-client", "system/Patient.rs", organization=IDP_ORGANIZATION)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http, idp_key


async def test_external_issuer_tokens(with_idp, database):
    http, idp_key = with_idp
    good = mint(idp_key, access_claims("idp-client", iss=IDP, scope="system/Patient.rs system/Encounter.rs"))
    assert (await http.get("/fhir/Patient", headers=bearer(good))).status_code == 200
    # the registration is the ceiling: Encounter was in the token, not in the registration
    await expect_refused(http, database, "GET", "/fhir/Encounter", 403, headers=bearer(good), client_id="idp-client")
    impostor = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    for token in (
        mint(impostor, access_claims("idp-client", iss=IDP)),
        mint(idp_key, access_claims("idp-client", iss=IDP, aud="https://elsewhere.example")),
        mint(idp_key, access_claims("idp-client", iss=IDP, exp=int(time.time()) - 300)),
        mint(idp_key, access_claims("idp-client", iss="https://other-idp.example")),
    ):
        await expect_refused(http, database, "GET", "/fhir/Patient", 401, headers=bearer(token))
    unregistered = mint(idp_key, access_claims("stranger", iss=IDP))
    await expect_refused(
        http, database, "GET", "/fhir/Patient", 401, headers=bearer(unregistered), client_id="stranger"
    )


async def test_external_wildcard_token_is_narrowed_to_the_registration(with_idp, database):
    """The registration is the ceiling of an external token's scopes: a token granting system/*.rs to a
    client registered for system/Patient.rs may read and search Patients (the intersection), no more."""
    http, idp_key = with_idp
    wide = mint(idp_key, access_claims("idp-client", iss=IDP, scope="system/*.rs"))
    response = await http.get("/fhir/Patient", headers=bearer(wide))
    assert response.status_code == 200, response.text
    await expect_refused(http, database, "GET", "/fhir/Encounter", 403, headers=bearer(wide), client_id="idp-client")


async def test_key_rotation_keeps_issued_tokens_valid(settings, database, program, tmp_path):
    rotating = settings.model_copy(update={"keys_dir": tmp_path / "keys"})
    app = create_app(rotating, database)
    admin_key = await register_client(database, program, "rotation-admin", "system/*.cruds peerlink.admin")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        old = bearer(await fetch_token(http, admin_key, "rotation-admin", TOKEN_URL))
        old_kid = json.loads(base64.urlsafe_b64decode(old["Authorization"].split()[1].split(".")[0] + "=="))["kid"]
        rotated = await http.post("/admin/v1/keys/rotate", headers=old)
        assert rotated.status_code == 200, rotated.text
        new_kid = rotated.json()["kid"]
        assert new_kid != old_kid
        assert {k["kid"] for k in (await http.get("/auth/jwks")).json()["keys"]} == {old_kid, new_kid}
        assert (await http.get("/fhir/Patient", headers=old)).status_code == 200
        fresh = await fetch_token(http, admin_key, "rotation-admin", TOKEN_URL)
        assert json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"] == new_kid
        assert (await http.get("/fhir/Patient", headers=bearer(fresh))).status_code == 200


async def test_external_issuer_cannot_speak_for_the_programs_own_clients(with_idp, database, program):
    """A hospital's IdP is trusted for the hospital's clients, not for the program's own: a token it
    signs naming the program's full-scope admin client (registered here with its own keys, no
    organisation) must not open the whole program and the admin API."""
    http, idp_key = with_idp
    await register_client(database, program, "program-own", "system/*.cruds peerlink.admin")
    forged = bearer(mint(idp_key, access_claims("program-own", iss=IDP, scope="system/*.cruds peerlink.admin")))
    for path in ("/admin/v1/clients", "/peer/v1/participants", "/fhir/Patient"):
        response = await http.get(path, headers=forged)
        assert response.status_code == 401, (path, response.status_code)


@pytest.mark.parametrize("scope", [5, [5], [None]], ids=["int", "list-of-int", "list-of-null"])
async def test_malformed_scope_claim_is_401_not_500(anonymous, database, settings, reader, scope):
    token = mint(gateway_key(settings), access_claims(scope=scope))
    await expect_refused(anonymous, database, "GET", "/fhir/Patient", 401, headers=bearer(token))
