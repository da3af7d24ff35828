"""Test-side SMART backend client, written with PyJWT (independent of the gateway's authlib/joserfc)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FULL_SCOPES = "system/*.cruds peerlink.admin"


@dataclass(frozen=True)
class ClientKey:
    kid: str
    alg: str
    private: Any

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


@cache
def rsa_key(name: str = "default") -> ClientKey:
    return ClientKey(f"rsa-{name}", "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@cache
def ec_key(name: str = "default") -> ClientKey:
    return ClientKey(f"ec-{name}", "ES384", ec.generate_private_key(ec.SECP384R1()))


def assertion(
    key: ClientKey,
    client_id: str,
    token_url: str,
    *,
    lifetime: int = 240,
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    alg: str | None = None,
    signing_key: Any = None,
) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    payload.update(claims or {})
    header = {"kid": key.kid, **(headers or {})}
    return jwt.encode(
        payload, signing_key if signing_key is not None else key.private, algorithm=alg or key.alg, headers=header
    )


def token_form(signed: str, scope: str | None = None) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
    if scope is not None:
        form["scope"] = scope
    return form


async def fetch_token(
    http: httpx.AsyncClient, key: ClientKey, client_id: str, token_url: str, scope: str | None = None
) -> str:
    response = await http.post("/auth/token", data=token_form(assertion(key, client_id, token_url), scope))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
