"""The client side of SMART Backend Services: a JWT assertion signed with the client's private key
(authlib's ``private_key_jwt``) exchanged for an access token. Used by ``peerlink token`` and by the
gateway when it calls an EHR."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

with warnings.catch_warnings():  # authlib 1.9 nudges towards httpx2; httpx is the project's client
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

ASSERTION_SECONDS = 240
"""Under SMART's five-minute ceiling, with room for clock skew."""

PrivateKey = RSAKey | ECKey


def load_private_key(pem: bytes, kid: str | None = None) -> PrivateKey:
    """An RSA or EC private key from PEM; its kid is the RFC 7638 thumbprint unless given."""
    key: PrivateKey
    try:
        key = RSAKey.import_key(pem)
    except (ValueError, TypeError, JoseError):
        key = ECKey.import_key(pem)
    if not key.is_private:
        raise ValueError("the PEM holds a public key; the client signs with its private key")
    return key.__class__.import_key(pem, parameters={"kid": kid or key.thumbprint()})


def default_alg(key: PrivateKey) -> str:
    return "RS384" if isinstance(key, RSAKey) else "ES384"


def public_jwks(key: PrivateKey, alg: str | None = None) -> dict[str, Any]:
    """The JWKS a client registers: its public key with kid, alg and use."""
    public = key.as_dict(private=False)
    return {"keys": [{**public, "alg": alg or default_alg(key), "use": "sig"}]}


def private_key_file(path: Path, kid: str | None = None) -> PrivateKey:
    return load_private_key(path.read_bytes(), kid)


class SmartAssertion(PrivateKeyJWT):  # type: ignore[misc]
    """authlib's private_key_jwt with SMART's rules: a short lifetime, a fresh jti, the kid in the header."""

    def __init__(self, token_url: str, key: PrivateKey, alg: str) -> None:
        super().__init__(token_url, headers={"kid": key.kid}, alg=alg)
        self._key = key

    def sign(self, auth: Any, token_endpoint: str) -> str:
        signed: str = private_key_jwt_sign(
            self._key,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            alg=self.alg,
            header=dict(self.headers),
            expires_in=ASSERTION_SECONDS,
        )
        return signed


def sign_assertion(token_url: str, client_id: str, key: PrivateKey, alg: str | None = None) -> str:
    """One client assertion, as :func:`fetch_token` would send it."""
    signed: str = private_key_jwt_sign(
        key,
        client_id=client_id,
        token_endpoint=token_url,
        alg=alg or default_alg(key),
        header={"kid": key.kid},
        expires_in=ASSERTION_SECONDS,
    )
    return signed


async def fetch_token(
    token_url: str,
    client_id: str,
    key: PrivateKey,
    *,
    alg: str | None = None,
    scope: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    http_timeout: float = 10.0,
) -> dict[str, Any]:
    """POST the client_credentials grant with a fresh assertion; the token response (raises on an error)."""
    auth = SmartAssertion(token_url, key, alg or default_alg(key))
    async with AsyncOAuth2Client(
        client_id, token_endpoint_auth_method=auth, transport=transport, timeout=http_timeout
    ) as client:
        extra = {"scope": scope} if scope else {}
        token: dict[str, Any] = await client.fetch_token(token_url, grant_type="client_credentials", **extra)
    return token
