"""Access tokens: RFC 9068 JWTs signed by the gateway (authlib's generator), and their verification
on every request (authlib's validator), for our own tokens and an external issuer's."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.util import to_bytes

from service.domain.errors import Unauthorized

from .clients import RegisteredClient
from .keys import SIGNING_ALG, SigningKeys

VERIFIED_CACHE_SIZE = 10_000


class _Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, keys: SigningKeys, issuer: str, audience: str, lifetime: int) -> None:
        super().__init__(issuer=issuer, alg=SIGNING_ALG, expires_generator=lifetime)
        self._keys = keys
        self._audience = audience

    def get_jwks(self) -> KeySet:
        return self._keys.signing()

    def get_audiences(self, client: RegisteredClient, user: object, scope: str) -> str:
        return self._audience

    def get_extra_claims(self, client: RegisteredClient, grant_type: str, user: object, scope: str) -> dict[str, Any]:
        claims: dict[str, Any] = {"program": client.program_id}
        if client.organization:
            claims["organization"] = client.organization
        return claims


class TokenIssuer:
    def __init__(self, keys: SigningKeys, issuer: str, audience: str, lifetime: int) -> None:
        self.lifetime = lifetime
        self._generator = _Generator(keys, issuer, audience, lifetime)

    def issue(self, client: RegisteredClient, scope: str) -> dict[str, Any]:
        """The token response body: access_token, token_type, expires_in, scope."""
        token: dict[str, Any] = self._generator.generate(
            "client_credentials", client, user=None, scope=scope, include_refresh_token=False
        )
        return token


class _Validator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, issuer: str, audience: str, key_set: Any) -> None:
        super().__init__(issuer=issuer, resource_server=audience)
        self._key_set = key_set

    def get_jwks(self) -> KeySet:
        key_set: KeySet = self._key_set() if callable(self._key_set) else self._key_set
        return key_set


@dataclass(frozen=True)
class VerifiedToken:
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    issuer: str


def _unverified_issuer(token: str) -> str:
    try:
        payload = jws.extract_compact(to_bytes(token)).payload
        claims = orjson.loads(payload)
    except (JoseError, ValueError, TypeError):
        raise Unauthorized("the bearer token is not a JWT this server accepts") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str):
        raise Unauthorized("the bearer token names no issuer")
    return issuer


class TokenVerifier:
    """Signature, iss, aud, exp, nbf and typ of a bearer token; a verified token is remembered until it
    expires, so a client's repeated requests cost one dictionary lookup."""

    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        audience: str,
        *,
        external_issuer: str | None = None,
        external_jwks_url: str | None = None,
        external_audience: str | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._own_issuer = issuer
        self._validators: dict[str, _Validator] = {issuer: _Validator(issuer, audience, keys.verifying)}
        self._external_url = external_jwks_url
        self._external_keys: tuple[float, KeySet] | None = None
        if external_issuer:
            if not external_jwks_url:
                raise ValueError("an external issuer needs its JWKS URL")
            self._validators[external_issuer] = _Validator(
                external_issuer, external_audience or audience, lambda: self._external_key_set()
            )
        self._timeout = timeout
        self._transport = transport
        self._verified: OrderedDict[str, VerifiedToken] = OrderedDict()

    def _external_key_set(self) -> KeySet:
        assert self._external_keys is not None
        return self._external_keys[1]

    async def _fetch_external(self) -> None:
        if self._external_keys is not None and time.monotonic() - self._external_keys[0] < 300:
            return
        assert self._external_url is not None
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                response = await http.get(self._external_url)
                response.raise_for_status()
                key_set = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, JoseError, ValueError, TypeError):
            raise Unauthorized("the external issuer's keys could not be fetched") from None
        self._external_keys = (time.monotonic(), key_set)

    async def verify(self, token: str) -> VerifiedToken:
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at > now:
                return known
            del self._verified[token]
        issuer = _unverified_issuer(token)
        validator = self._validators.get(issuer)
        if validator is None:
            raise Unauthorized("the bearer token is from an issuer this server does not trust")
        if issuer != self._own_issuer:
            await self._fetch_external()
        try:
            claims = validator.authenticate_token(token)
            validator.validate_token(claims, scopes=None, request=None)
        except (InvalidTokenError, JoseError, ValueError) as error:
            raise Unauthorized("the bearer token is invalid or expired") from error
        if str(claims.header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise Unauthorized("the bearer token is not an access token (typ must be at+jwt)")
        scope = claims.get("scope") or ""
        if isinstance(scope, str):
            scopes = tuple(scope.split())
        elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
            scopes = tuple(scope)
        else:
            raise Unauthorized("the bearer token's scope claim is malformed")
        verified = VerifiedToken(
            client_id=str(claims["client_id"]),
            scopes=scopes,
            expires_at=float(claims["exp"]),
            issuer=issuer,
        )
        self._verified[token] = verified
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified
