"""SMART Backend Services against real gateway processes on loopback: a client written with PyJWT
(not the gateway's authlib/joserfc) obtains a token that fhirpy then reads with; and, on PostgreSQL,
two gateway processes sharing one database and one keys folder behave as one authorization server
(an assertion used at one is a replay at the other; a token of one is accepted by the other)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from fhirpy import AsyncFHIRClient
from joserfc.jwk import RSAKey
from sqlalchemy.engine import make_url

from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS, Gateway, free_port, running_gateway

pytestmark = pytest.mark.e2e
PG_URL = os.environ.get("PEERLINK_TEST_DATABASE_URL")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEMO_CLIENT = "demo"


def demo_assertion(keys_dir: Path, token_url: str, *, jti: str | None = None) -> str:
    """The seeded demo client's assertion, signed with PyJWT; kid = the key's RFC 7638 thumbprint."""
    pem = (keys_dir / "demo-client.pem").read_bytes()
    kid = RSAKey.import_key(pem).thumbprint()
    now = int(time.time())
    claims = {
        "iss": DEMO_CLIENT,
        "sub": DEMO_CLIENT,
        "aud": token_url,
        "exp": now + 240,
        "jti": jti or uuid.uuid4().hex,
    }
    return jwt.encode(claims, pem, algorithm="RS384", headers={"kid": kid})


def token_request(base: str, signed: str, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    if scope:
        form["scope"] = scope
    return httpx.post(f"{base}/auth/token", data=form, timeout=30)


# --- (a) one gateway, a PyJWT client, fhirpy ---------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("auth-process")) as running:
        yield running


async def test_pyjwt_token_is_accepted_and_fhirpy_reads_with_it(gateway: Gateway):
    keys_dir = Path(gateway.env["PEERLINK_KEYS_DIR"])
    response = await asyncio.to_thread(
        token_request, gateway.base, demo_assertion(keys_dir, f"{gateway.base}/auth/token"), "system/Patient.rs"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "system/Patient.rs"
    token = body["access_token"]

    client = AsyncFHIRClient(f"{gateway.base}/fhir", authorization=f"Bearer {token}")
    patients = await client.resources("Patient").limit(3).fetch()
    assert len(patients) == 3
    patient = await client.reference("Patient", patients[0]["id"]).to_resource()
    assert patient["resourceType"] == "Patient" and patient["id"] == patients[0]["id"]

    async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as http:
        # the token's scope is what it may do; without a token nothing
        encounters = await http.get("/fhir/Encounter", headers={"Authorization": f"Bearer {token}"})
        assert encounters.status_code == 403
        anonymous = await http.get(f"/fhir/Patient/{patient['id']}")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_replay_and_forgery_against_the_process(gateway: Gateway):
    keys_dir = Path(gateway.env["PEERLINK_KEYS_DIR"])
    signed = demo_assertion(keys_dir, f"{gateway.base}/auth/token")
    first = await asyncio.to_thread(token_request, gateway.base, signed)
    assert first.status_code == 200, first.text
    second = await asyncio.to_thread(token_request, gateway.base, signed)
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_client"
    wrong_aud = demo_assertion(keys_dir, "http://elsewhere.example/auth/token")
    refused = await asyncio.to_thread(token_request, gateway.base, wrong_aud)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


# --- (b) two gateways, one PostgreSQL database ---------------------------------------------------------------
SHARED_PUBLIC_URL = "http://peerlink-shared.test"


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    assert PG_URL
    conn = await asyncpg.connect(_dsn(PG_URL))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _token_refusals(url: str) -> int:
    conn = await asyncpg.connect(_dsn(url))
    try:
        query = "SELECT count(*) FROM audit_log WHERE type = 'security' AND subtype = 'token' AND outcome = '4'"
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""
    assert PG_URL
    name = f"peerlink_auth_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """`peerlink serve` with ``env``; yields its loopback base URL once it is ready."""
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [PEERLINK, "serve"], env={**env, "PEERLINK_PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (PEERLINK_TEST_DATABASE_URL)")
def test_two_gateways_on_one_database_are_one_authorization_server(pg_database: str, tmp_path: Path):
    env: dict[str, Any] = {
        **os.environ,
        "PEERLINK_DATABASE_URL": pg_database,
        "PEERLINK_KEYS_DIR": str(tmp_path / "keys"),
        "PEERLINK_PUBLIC_URL": SHARED_PUBLIC_URL,
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_LOG_LEVEL": "WARNING",
    }
    for step in ("migrate", "seed"):
        subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
    token_url = f"{SHARED_PUBLIC_URL}/auth/token"
    keys_dir = tmp_path / "keys"
    with ExitStack() as stack:
        # one after the other: the first creates the signing key the second then finds in the folder
        first = stack.enter_context(serve(env, tmp_path / "gateway-1.log"))
        second = stack.enter_context(serve(env, tmp_path / "gateway-2.log"))
        jwks = [httpx.get(f"{base}/auth/jwks", timeout=10).json() for base in (first, second)]
        assert jwks[0] == jwks[1]

        # the same assertion: accepted once, at gateway 1, then a replay at gateway 2
        signed = demo_assertion(keys_dir, token_url)
        accepted = token_request(first, signed, "system/*.rs")
        assert accepted.status_code == 200, accepted.text
        replayed = token_request(second, signed, "system/*.rs")
        assert replayed.status_code == 401, replayed.text
        assert replayed.json()["error"] == "invalid_client"
        assert "replay" in replayed.json()["error_description"]
        # and the other way round
        signed = demo_assertion(keys_dir, token_url)
        assert token_request(second, signed).status_code == 200
        assert token_request(first, signed).status_code == 401

        # a token issued by one is accepted by the other (shared signing keys, one issuer)
        token = accepted.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iss"] == SHARED_PUBLIC_URL and claims["aud"] == SHARED_PUBLIC_URL
        for base in (first, second):
            response = httpx.get(
                f"{base}/fhir/Patient", params={"_count": 2}, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert response.status_code == 200, response.text
            assert len(response.json()["entry"]) == 2
    # the two refusals, one from each process, are in the one audit log
    assert asyncio.run(_token_refusals(pg_database)) == 2
