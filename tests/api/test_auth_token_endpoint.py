"""The token endpoint under attack: every forged, stale, replayed or over-reaching client assertion is
answered with an RFC 6749 error (401 invalid_client, 400 for request, grant and scope errors) and
leaves a refusal in the audit log; the honest ones (RS384, ES384, inline JWKS or a JWKS URL) get an
RFC 9068 access token with the granted scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from service.app import create_app
from service.auth import clients
from service.store.tables import audit_log
from tests.auth_support import ASSERTION_TYPE, ClientKey, assertion, ec_key, rsa_key, token_form
from tests.conftest import BASE_URL, TOKEN_URL, register_client

CLIENT = "clinic-app"
SCOPES = "system/Patient.rs system/ServiceRequest.c"
FORM = "application/x-www-form-urlencoded"


# --- helpers ---------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_for(client_id: str = CLIENT, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 240, "jti": uuid.uuid4().hex}
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def unsigned(key: ClientKey, payload: dict[str, Any]) -> str:
    """alg none: no signature at all (PyJWT would not make one with a kid; crafted by hand)."""
    return f"{b64json({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{b64json(payload)}."


def hs256_with_public_pem(key: ClientKey, payload: dict[str, Any]) -> str:
    """The classic algorithm confusion: HMAC keyed with the client's *public* key (PyJWT refuses this)."""
    secret = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{b64json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def signed(key: ClientKey, payload: dict[str, Any], *, alg: str | None = None, **header: Any) -> str:
    return jwt.encode(payload, key.private, algorithm=alg or key.alg, headers={"kid": key.kid, **header})


def tamper_signature(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


def tamper_payload(token: str, **changes: Any) -> str:
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return f"{head}.{b64json({**claims, **changes})}.{signature}"


async def token_audit(database) -> list[dict[str, Any]]:
    """The audit records of the token endpoint, oldest first."""
    first_key = next(iter(audit_log.primary_key.columns))
    query = (
        select(audit_log)
        .where(audit_log.c.type == "security", audit_log.c.subtype == "token")
        .order_by(audit_log.c.recorded, first_key)
    )
    async with database.read() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


async def refused(
    http: httpx.AsyncClient,
    database,
    *,
    status: int,
    error: str,
    form: dict[str, str] | None = None,
    content: bytes | None = None,
    content_type: str = FORM,
    client_id: str | None = None,
) -> dict[str, Any]:
    """POST to the token endpoint, expect an OAuth error and exactly one refusal in the audit log."""
    before = await token_audit(database)
    if form is not None:
        response = await http.post("/auth/token", data=form)
    else:
        response = await http.post("/auth/token", content=content or b"", headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "access_token" not in body
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    after = await token_audit(database)
    assert len(after) == len(before) + 1, "the refusal was not audited"
    record = after[-1]
    assert (record["type"], record["subtype"], record["outcome"], record["action"]) == ("security", "token", "4", "E")
    assert record["detail"]["error"] == error
    assert record["detail"]["reason"] == body["error_description"]
    assert record["client_id"] == client_id
    assert record["address"]
    return body


def claims_of(access_token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(access_token), jwt.decode(access_token, options={"verify_signature": False})


@pytest.fixture
async def key(database, program) -> ClientKey:
    return await register_client(database, program, CLIENT, SCOPES)


# --- the honest client ------------------------------------------------------------------------------
async def test_rs384_assertion_gets_an_rfc9068_access_token(anonymous, database, key):
    response = await anonymous.post("/auth/token", data=token_form(assertion(key, CLIENT, TOKEN_URL)))

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == SCOPES
    assert "refresh_token" not in body
    header, claims = claims_of(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    # the signature verifies with the published JWKS
    jwks = (await anonymous.get("/auth/jwks")).json()
    assert all("d" not in k for k in jwks["keys"])
    public = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    verified = jwt.decode(body["access_token"], public.key, algorithms=["RS256"], audience=BASE_URL)
    assert verified == claims
    assert claims["iss"] == BASE_URL and claims["aud"] == BASE_URL
    assert claims["client_id"] == CLIENT and claims["sub"] == CLIENT
    assert claims["scope"] == SCOPES
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"] and "organization" not in claims
    # issued tokens are audited too
    record = (await token_audit(database))[-1]
    assert (record["outcome"], record["client_id"], record["detail"]["scope"]) == ("0", CLIENT, SCOPES)
    # and the token works
    used = await anonymous.get("/fhir/Patient", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert used.status_code == 200, used.text


async def test_es384_assertion_works(anonymous, database, program):
    key = await register_client(database, program, "ec-client", "system/Patient.rs", key=ec_key("token-endpoint"))
    response = await anonymous.post("/auth/token", data=token_form(assertion(key, "ec-client", TOKEN_URL)))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert (await anonymous.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_organisation_goes_into_the_token(anonymous, database, program):
    key = await register_client(
        database, program, "org-client", "system/Patient.rs", organization="urn:oid:1.2.3|hospital"
    )
    response = await anonymous.post("/auth/token", data=token_form(assertion(key, "org-client", TOKEN_URL)))
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])[1]["organization"] == "urn:oid:1.2.3|hospital"
    assert (await token_audit(database))[-1]["organization"] == "urn:oid:1.2.3|hospital"


async def test_form_with_a_charset_is_a_form(anonymous, key):
    raw = str(httpx.QueryParams(token_form(assertion(key, CLIENT, TOKEN_URL)))).encode()
    response = await anonymous.post(
        "/auth/token", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    )
    assert response.status_code == 200, response.text


async def test_discovery_document(anonymous):
    config = (await anonymous.get("/.well-known/smart-configuration")).json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    # the CapabilityStatement points at the same token endpoint
    metadata = (await anonymous.get("/fhir/metadata")).json()
    security = metadata["rest"][0]["security"]
    oauth = [e for e in security["extension"] if e["url"].endswith("/oauth-uris")]
    assert {"url": "token", "valueUri": TOKEN_URL} in oauth[0]["extension"]


# --- the attack matrix ------------------------------------------------------------------------------
Attack = Callable[[ClientKey], str]

ATTACKS: dict[str, tuple[Attack, bool]] = {
    # name: (the assertion, whether the refusal can name the client)
    "alg none": (lambda k: unsigned(k, claims_for()), False),
    "alg none, empty signature dropped": (lambda k: unsigned(k, claims_for())[:-1], False),
    "HS256 keyed with the public key": (lambda k: hs256_with_public_pem(k, claims_for()), False),
    "RS256 (only RS384 and ES384)": (lambda k: signed(k, claims_for(), alg="RS256"), False),
    "RS512": (lambda k: signed(k, claims_for(), alg="RS512"), False),
    "PS384": (lambda k: signed(k, claims_for(), alg="PS384"), False),
    "expired": (lambda k: signed(k, claims_for(exp=int(time.time()) - 120)), True),
    "exp ten minutes ahead": (lambda k: signed(k, claims_for(exp=int(time.time()) + 600)), True),
    "nbf ten minutes ahead": (lambda k: signed(k, claims_for(nbf=int(time.time()) + 600)), True),
    "no exp": (lambda k: signed(k, {key: v for key, v in claims_for().items() if key != "exp"}), True),
    "no jti": (lambda k: signed(k, {key: v for key, v in claims_for().items() if key != "jti"}), True),
    "aud is the issuer, not the token URL": (lambda k: signed(k, claims_for(aud=BASE_URL)), True),
    "aud of another server": (lambda k: signed(k, claims_for(aud="https://other.example/auth/token")), True),
    "iss is not sub": (lambda k: signed(k, claims_for(iss="someone-else")), False),
    "no sub": (lambda k: signed(k, claims_for(sub=None)), False),
    "unknown client": (lambda k: signed(k, claims_for("no-such-client")), False),
    "unknown kid": (lambda k: signed(k, claims_for(), kid="not-a-registered-kid"), True),
    "empty kid": (lambda k: signed(k, claims_for(), kid=""), True),
    "signed by another key under the client's kid": (
        lambda k: jwt.encode(claims_for(), rsa_key("intruder").private, algorithm="RS384", headers={"kid": k.kid}),
        True,
    ),
    "tampered signature": (lambda k: tamper_signature(signed(k, claims_for())), True),
    "tampered payload": (lambda k: tamper_payload(signed(k, claims_for()), exp=int(time.time()) + 200), True),
    "not a JWT": (lambda k: "this-is-not-a-jwt", False),
    "three garbage segments": (lambda k: "abc.def.ghi", False),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_is_refused_and_audited(anonymous, database, key, attack):
    make, names_client = ATTACKS[attack]
    await refused(
        anonymous,
        database,
        form=token_form(make(key)),
        status=401,
        error="invalid_client",
        client_id=CLIENT if names_client else None,
    )


async def test_replayed_assertion_is_refused(anonymous, database, key):
    signed_once = assertion(key, CLIENT, TOKEN_URL)
    first = await anonymous.post("/auth/token", data=token_form(signed_once))
    assert first.status_code == 200, first.text
    body = await refused(
        anonymous, database, form=token_form(signed_once), status=401, error="invalid_client", client_id=CLIENT
    )
    assert "replay" in body["error_description"]
    # the same jti in a freshly signed assertion is a replay too
    again = assertion(
        key, CLIENT, TOKEN_URL, claims={"jti": jwt.decode(signed_once, options={"verify_signature": False})["jti"]}
    )
    await refused(anonymous, database, form=token_form(again), status=401, error="invalid_client", client_id=CLIENT)
    # a fresh assertion still works
    assert (await anonymous.post("/auth/token", data=token_form(assertion(key, CLIENT, TOKEN_URL)))).status_code == 200


async def test_same_jti_for_two_clients_is_no_replay(anonymous, database, program, key):
    other = await register_client(database, program, "other-app", "system/Patient.rs", key=rsa_key("other-app"))
    jti = uuid.uuid4().hex
    for client_id, client_key in ((CLIENT, key), ("other-app", other)):
        signed_once = assertion(client_key, client_id, TOKEN_URL, claims={"jti": jti})
        response = await anonymous.post("/auth/token", data=token_form(signed_once))
        assert response.status_code == 200, response.text


async def test_disabled_client_is_refused(client, database, key):
    disabled = await client.post(f"/admin/v1/clients/{CLIENT}/disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True
    body = await refused(
        client,
        database,
        form=token_form(assertion(key, CLIENT, TOKEN_URL)),
        status=401,
        error="invalid_client",
        client_id=CLIENT,
    )
    assert "disabled" in body["error_description"]
    assert (await client.post(f"/admin/v1/clients/{CLIENT}/enable")).status_code == 200
    assert (await client.post("/auth/token", data=token_form(assertion(key, CLIENT, TOKEN_URL)))).status_code == 200


# --- scopes --------------------------------------------------------------------------------------
async def test_scope_escalation_is_not_granted(anonymous, database, key):
    asked = "system/Patient.rs system/Encounter.rs peerlink.admin system/*.cruds system/Patient.cruds"
    response = await anonymous.post("/auth/token", data=token_form(assertion(key, CLIENT, TOKEN_URL), asked))
    assert response.status_code == 200, response.text
    granted = response.json()["scope"].split()
    assert set(granted) == {"system/Patient.rs", "system/ServiceRequest.c"}
    assert claims_of(response.json()["access_token"])[1]["scope"].split() == granted
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await anonymous.get("/fhir/Patient", headers=auth)).status_code == 200
    assert (await anonymous.get("/fhir/Encounter", headers=auth)).status_code == 403
    assert (await anonymous.get("/admin/v1/clients", headers=auth)).status_code == 403
    assert (await anonymous.get("/admin/v1/keys", headers=auth)).status_code == 403


async def test_narrower_scope_is_granted_as_asked(anonymous, key):
    response = await anonymous.post(
        "/auth/token", data=token_form(assertion(key, CLIENT, TOKEN_URL), "system/Patient.r")
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "system/Patient.r"
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await anonymous.get("/fhir/Patient", headers=auth)).status_code == 403  # search needs s


@pytest.mark.parametrize(
    "asked",
    [
        "system/Encounter.rs",
        "peerlink.admin",
        "system/Patient.cud",
        "system/Patient.rs?gender=female",
        "openid launch patient/*.read",
    ],
)
async def test_only_disallowed_scopes_is_invalid_scope(anonymous, database, key, asked):
    await refused(
        anonymous,
        database,
        form=token_form(assertion(key, CLIENT, TOKEN_URL), asked),
        status=400,
        error="invalid_scope",
        client_id=CLIENT,
    )


# --- malformed requests ------------------------------------------------------------------------------
async def test_wrong_grant_type(anonymous, database, key):
    form = {**token_form(assertion(key, CLIENT, TOKEN_URL)), "grant_type": "authorization_code"}
    await refused(anonymous, database, form=form, status=400, error="unsupported_grant_type")
    form.pop("grant_type")
    await refused(anonymous, database, form=form, status=400, error="unsupported_grant_type")


async def test_wrong_assertion_type_or_no_assertion(anonymous, database, key):
    form = {**token_form(assertion(key, CLIENT, TOKEN_URL)), "client_assertion_type": "urn:example:saml"}
    await refused(anonymous, database, form=form, status=400, error="invalid_request")
    form = token_form(assertion(key, CLIENT, TOKEN_URL))
    form.pop("client_assertion")
    await refused(anonymous, database, form=form, status=400, error="invalid_request")
    await refused(anonymous, database, form={**form, "client_assertion": ""}, status=400, error="invalid_request")


async def test_repeated_parameter_is_invalid_request(anonymous, database, key):
    signed_once = assertion(key, CLIENT, TOKEN_URL)
    raw = (
        f"grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}"
        f"&client_assertion={signed_once}&scope=system/Patient.rs&scope=peerlink.admin"
    ).encode()
    await refused(anonymous, database, content=raw, status=400, error="invalid_request")
    twice = f"grant_type=client_credentials&grant_type=client_credentials&client_assertion={signed_once}".encode()
    await refused(anonymous, database, content=twice, status=400, error="invalid_request")
    # nothing was consumed: the assertion still works once
    assert (await anonymous.post("/auth/token", data=token_form(signed_once))).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"grant_type": "client_credentials"}', "application/json"),
        (b"grant_type=client_credentials", "text/plain"),
        (b"", "multipart/form-data; boundary=x"),
        (b"grant_type=client_credentials", ""),
    ],
)
async def test_non_form_body_is_invalid_request(anonymous, database, content, content_type):
    await refused(anonymous, database, content=content, content_type=content_type, status=400, error="invalid_request")


async def test_undecodable_form_is_invalid_request(anonymous, database):
    await refused(anonymous, database, content=b"grant_type=\xff\xfe", status=400, error="invalid_request")


async def test_get_is_not_a_token_request(anonymous):
    response = await anonymous.get("/auth/token")
    assert response.status_code == 405
    assert "access_token" not in response.text


# --- keys published at a JWKS URL ----------------------------------------------------------------------
JWKS_URL = "https://clinic.example/.well-known/jwks.json"


class JwksServer:
    """The client's JWKS URL, served through the gateway's outbound transport."""

    def __init__(self, *keys: ClientKey) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.fail = False
        self.leak_private = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.calls += 1
        if self.fail:
            return httpx.Response(500)
        if self.leak_private:  # a misconfigured server publishing the private half
            private = [json.loads(RSAAlgorithm.to_jwk(k.private)) | {"kid": k.kid, "alg": k.alg} for k in self.keys]
            return httpx.Response(200, json={"keys": private})
        return httpx.Response(200, json={"keys": [k.public_jwk for k in self.keys]})


@pytest.fixture
async def jwks_gateway(settings, database, program):
    served = JwksServer(rsa_key("jwks-url"))
    async with database.transaction() as conn:
        await clients.add(conn, program.id, "url-client", "system/Patient.rs", datetime.now(UTC), jwks_url=JWKS_URL)
    app = create_app(settings, database, outbound=httpx.MockTransport(served.handle))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http, served


async def test_keys_at_a_jwks_url(jwks_gateway, database, monkeypatch):
    http, served = jwks_gateway
    key = served.keys[0]
    for _ in range(2):
        response = await http.post("/auth/token", data=token_form(assertion(key, "url-client", TOKEN_URL)))
        assert response.status_code == 200, response.text
    assert served.calls == 1  # cached
    token = response.json()["access_token"]
    assert (await http.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})).status_code == 200

    # the client rotates: an unknown kid refetches the JWKS (rate-limited; the limit is lifted here)
    rotated = rsa_key("jwks-url-rotated")
    served.keys.append(rotated)
    monkeypatch.setattr(clients, "JWKS_REFETCH_AFTER_SECONDS", 0.0)
    response = await http.post("/auth/token", data=token_form(assertion(rotated, "url-client", TOKEN_URL)))
    assert response.status_code == 200, response.text
    assert served.calls == 2

    # a key that is not published is refused, as is any key when the URL fails
    stranger = rsa_key("jwks-url-stranger")
    await refused(
        http,
        database,
        form=token_form(assertion(stranger, "url-client", TOKEN_URL)),
        status=401,
        error="invalid_client",
        client_id="url-client",
    )


async def test_jwks_url_that_fails_is_invalid_client(jwks_gateway, database):
    http, served = jwks_gateway
    served.fail = True
    await refused(
        http,
        database,
        form=token_form(assertion(served.keys[0], "url-client", TOKEN_URL)),
        status=401,
        error="invalid_client",
        client_id="url-client",
    )


async def test_jwks_url_serving_a_private_key_is_refused(jwks_gateway, database):
    http, served = jwks_gateway
    served.leak_private = True
    await refused(
        http,
        database,
        form=token_form(assertion(served.keys[0], "url-client", TOKEN_URL)),
        status=401,
        error="invalid_client",
        client_id="url-client",
    )
