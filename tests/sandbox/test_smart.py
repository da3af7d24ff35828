"""The sandbox's SMART Backend Services authorization server and scope enforcement, in process."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from joserfc.jwk import ECKey

from service.auth.backend_client import fetch_token
from service.sandbox import ClientRegistration
from tests.auth_support import assertion, ec_key, rsa_key, token_form
from tests.sandbox.support import ADMIN_SECRET, ROOT, pem


def problem(response) -> str:
    body = response.json()
    return f"{body['error']}: {body['error_description']}"


async def test_discovery_document(ehr):
    for path in ("/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"):
        response = await ehr.http.get(path)
        assert response.status_code == 200
        document = response.json()
        assert document["token_endpoint"] == f"{ROOT}/auth/token"
        assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
        assert document["grant_types_supported"] == ["client_credentials"]
        assert "client-confidential-asymmetric" in document["capabilities"]


async def test_discovery_switched_off(make_sandbox):
    ehr = make_sandbox(smart_discovery=False)
    for path in ("/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"):
        response = await ehr.http.get(path)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


async def test_token_is_an_rfc9068_jwt_with_the_granted_scopes(ehr):
    key = ehr.register("peerlink", "system/Patient.rs system/Task.rus")
    response = await ehr.token_response("peerlink", key, "system/Patient.rs system/Task.cruds system/Goal.r")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Patient.rs system/Task.rus"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "peerlink" and claims["iss"] == ROOT


async def test_fetch_token_with_the_gateway_client_and_es384(ehr):
    key = ec_key()
    ehr.register("es-client", "system/*.rs", key)
    # ECKey directly: service.auth.backend_client.load_private_key cannot load EC PEMs yet (see test_check)
    private = ECKey.import_key(pem(key), parameters={"kid": key.kid})
    token = await fetch_token(ehr.token_url, "es-client", private, transport=ehr.transport)
    assert token["scope"] == "system/*.rs"
    response = await ehr.http.get("/fhir/Patient", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 200


async def test_jti_replay_is_refused(ehr):
    key = ehr.register()
    form = token_form(assertion(key, "peerlink", ehr.token_url))
    assert (await ehr.http.post("/auth/token", data=form)).status_code == 200
    replay = await ehr.http.post("/auth/token", data=form)
    assert replay.status_code == 401
    assert "replay" in problem(replay)
    assert replay.headers["www-authenticate"] == "Bearer"


IN_TWO_MINUTES = object()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"lifetime": 400}, "5 minutes"),
        ({"claims": {"aud": f"{ROOT}/fhir"}}, "aud"),
        ({"claims": {"aud": "http://elsewhere.example/auth/token"}}, "aud"),
        ({"headers": {"kid": "not-registered"}}, "kid"),
        ({"alg": "RS256"}, "RS384 or ES384"),
        ({"lifetime": -120}, "expired"),
        ({"claims": {"iat": IN_TWO_MINUTES}}, "future"),
        ({"claims": {"nbf": IN_TWO_MINUTES}}, "not yet valid"),
        ({"claims": {"iss": "someone-else"}}, "iss and sub"),
    ],
    ids=[
        "exp-over-5-min",
        "aud-fhir-base",
        "aud-elsewhere",
        "unknown-kid",
        "rs256",
        "expired",
        "iat-future",
        "nbf-future",
        "iss-not-sub",
    ],
)
async def test_assertion_rules(ehr, kwargs, expected):
    # times are taken when the test runs, not when the module was collected
    claims = {k: int(time.time()) + 120 if v is IN_TWO_MINUTES else v for k, v in kwargs.get("claims", {}).items()}
    kwargs = {**kwargs, **({"claims": claims} if claims else {})}
    key = ehr.register()
    response = await ehr.token_response("peerlink", key, **kwargs)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert expected.lower() in problem(response).lower()


async def test_assertion_without_jti_is_refused(ehr):
    key = ehr.register()
    claims = {"iss": "peerlink", "sub": "peerlink", "aud": ehr.token_url, "exp": int(time.time()) + 200}
    signed = jwt.encode(claims, key.private, algorithm="RS384", headers={"kid": key.kid})
    response = await ehr.http.post("/auth/token", data=token_form(signed))
    assert response.status_code == 401
    assert "jwt id" in problem(response).lower()


@pytest.mark.parametrize(
    ("claim", "offset"),
    [("exp", -30), ("iat", 30), ("nbf", 30)],
    ids=["exp-30s-past", "iat-30s-ahead", "nbf-30s-ahead"],
)
async def test_one_minute_of_clock_skew_is_tolerated(ehr, claim, offset):
    key = ehr.register()
    response = await ehr.token_response("peerlink", key, claims={claim: int(time.time()) + offset})
    assert response.status_code == 200, response.text


async def test_request_shape_errors(ehr):
    key = ehr.register()
    unknown = await ehr.token_response("stranger", key)
    assert unknown.status_code == 401 and "unknown client" in problem(unknown)
    good = assertion(key, "peerlink", ehr.token_url)
    form = {**token_form(good), "grant_type": "authorization_code"}
    assert (await ehr.http.post("/auth/token", data=form)).json()["error"] == "unsupported_grant_type"
    form = {**token_form(good), "client_assertion_type": "urn:other"}
    assert (await ehr.http.post("/auth/token", data=form)).json()["error"] == "invalid_request"
    as_json = await ehr.http.post("/auth/token", json=token_form(good))
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    ehr.register("narrow", "system/Patient.rs", key)
    no_scope = await ehr.token_response("narrow", key, "system/Task.r")
    assert no_scope.status_code == 400 and no_scope.json()["error"] == "invalid_scope"
    wrong_key = await ehr.token_response("peerlink", key, signing_key=rsa_key("other").private)
    assert wrong_key.status_code == 401


async def test_expired_access_token_is_refused(make_sandbox):
    ehr = make_sandbox(token_seconds=2)  # exp is in whole seconds: a 2 s token lives at least 1 s
    headers = await ehr.headers()
    assert (await ehr.http.get("/fhir/Patient", headers=headers)).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        response = await ehr.http.get("/fhir/Patient", headers=headers)
        if response.status_code == 401:
            break
        assert time.monotonic() < deadline, "the token did not expire"
        await asyncio.sleep(0.25)
    assert response.json()["issue"][0]["code"] == "login"


async def test_scopes_are_enforced_per_type_and_interaction(ehr):
    referral = ehr.sandbox.clinic_referral()
    reader = await ehr.headers("reader", "system/Patient.rs system/Task.s")
    pid = ehr.sandbox.index.patient_ids[0]
    assert (await ehr.http.get(f"/fhir/Patient/{pid}", headers=reader)).status_code == 200
    assert (await ehr.http.get("/fhir/Patient", headers=reader)).status_code == 200
    assert (await ehr.http.get("/fhir/Encounter", headers=reader)).status_code == 403
    denied = await ehr.http.get(f"/fhir/Task/{referral.task_id}", headers=reader)
    assert denied.status_code == 403
    assert denied.json()["issue"][0]["code"] == "forbidden"
    create = await ehr.http.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={**reader, "Content-Type": "application/fhir+json"}
    )
    assert create.status_code == 403
    # _include of a type the token cannot read is left out
    bundle = (await ehr.http.get("/fhir/Task", params={"_include": "Task:focus"}, headers=reader)).json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Task"]
    v1 = await ehr.headers("v1-reader", "system/Task.read")
    assert (await ehr.http.get(f"/fhir/Task/{referral.task_id}", headers=v1)).status_code == 200
    assert (await ehr.http.put(f"/fhir/Task/{referral.task_id}", json={}, headers=v1)).status_code == 403


async def test_admin_client_registration(ehr):
    key = rsa_key("other")
    body = {"client_id": "new-client", "scopes": "system/*.rs", "jwks": key.jwks}
    assert (await ehr.http.post("/admin/clients", json=body)).status_code == 401
    wrong = await ehr.http.post("/admin/clients", json=body, headers={"X-Sandbox-Admin": "guess"})
    assert wrong.status_code == 401 and "www-authenticate" not in wrong.headers
    registered = await ehr.admin.register_client("new-client", "system/*.rs", jwks=key.jwks)
    assert registered["client_id"] == "new-client"
    again = await ehr.http.post("/admin/clients", json=body, headers={"X-Sandbox-Admin": ADMIN_SECRET})
    assert again.status_code == 409
    bad_scope = {**body, "client_id": "c2", "scopes": "patient/*.read"}
    assert (
        await ehr.http.post("/admin/clients", json=bad_scope, headers={"X-Sandbox-Admin": ADMIN_SECRET})
    ).status_code == 400
    private = {**body, "client_id": "c3", "jwks": {"keys": [{**key.public_jwk, "d": "secret"}]}}
    assert (
        await ehr.http.post("/admin/clients", json=private, headers={"X-Sandbox-Admin": ADMIN_SECRET})
    ).status_code == 400
    both = {**body, "client_id": "c4", "jwks_url": "https://keys.example/x.json"}
    assert (
        await ehr.http.post("/admin/clients", json=both, headers={"X-Sandbox-Admin": ADMIN_SECRET})
    ).status_code == 400
    listed = await ehr.http.get("/admin/clients", headers={"X-Sandbox-Admin": ADMIN_SECRET})
    assert [c["client_id"] for c in listed.json()] == ["new-client"]
    response = await ehr.token_response("new-client", key)
    assert response.status_code == 200


async def test_clients_preregistered_from_a_file(make_sandbox, tmp_path):
    path = tmp_path / "clients.json"
    path.write_text(json.dumps([{"client_id": "from-file", "scopes": "system/*.cruds", "jwks": rsa_key().jwks}]))
    ehr = make_sandbox(
        clients_file=path, clients=(ClientRegistration(client_id="inline", scopes="system/*.rs", jwks=ec_key().jwks),)
    )
    assert [c.client_id for c in ehr.sandbox.registry.all()] == ["inline", "from-file"]
    assert (await ehr.token_response("from-file", rsa_key())).status_code == 200
    path.write_text('{"clients": "nope"}')
    with pytest.raises(ValueError, match="JSON list"):
        make_sandbox(clients_file=path)
