"""The token endpoint's work: SMART Backend Services client authentication (an RFC 7523 JWT
assertion, checked by authlib's ``JWTBearerClientAssertion``) and the client_credentials grant.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest
from service.store import Database
from service.store.tables import auth_assertions

from . import clients
from .clients import JwksFetcher, RegisteredClient, import_jwks
from .scopes import grantable
from .tokens import TokenIssuer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_SECONDS = 300
CLOCK_SKEW_SECONDS = 60


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error: answered as {"error", "error_description"}."""

    def __init__(self, error: str, description: str, status: int = 400, client_id: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.client_id = client_id


def _invalid_client(description: str, client_id: str | None = None) -> OAuthError:
    return OAuthError("invalid_client", description, 401, client_id)


async def client_key_set(client: RegisteredClient, kid: Any, fetcher: JwksFetcher) -> KeySet:
    """The client's registered keys (inline, or fetched from its JWKS URL), holding the assertion's kid."""
    if not isinstance(kid, str) or not kid:
        raise _invalid_client("the assertion header must name the signing key (kid)", client.client_id)
    if client.jwks is not None:
        key_set = import_jwks(client.jwks)
    else:
        assert client.jwks_url is not None
        try:
            key_set = await fetcher.key_set(client.jwks_url, kid)
        except (httpx.HTTPError, ValueError, JoseError, BadRequest) as error:
            raise _invalid_client("the client's JWKS URL could not be fetched", client.client_id) from error
    if kid not in {key.kid for key in key_set.keys}:
        raise _invalid_client("the assertion's kid is not among the client's registered keys", client.client_id)
    return key_set


class SmartAssertionCheck(JWTBearerClientAssertion):  # type: ignore[misc]
    """authlib's RFC 7523 checks (iss = sub, aud, exp, jti present), with SMART's algorithms (or a
    narrower list); the jti is then claimed by the caller (the database here, memory in the sandbox)."""

    def __init__(self, token_url: str, algorithms: tuple[str, ...] = ASSERTION_ALGS) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW_SECONDS)
        self._token_url = token_url
        self._algorithms = list(algorithms)

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return isinstance(jti, str) and 0 < len(jti) <= 255

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self._algorithms)
        except JoseError as error:
            raise InvalidClientError(description=error.description or "the assertion does not verify") from error
        self.verify_claims(token.claims)
        return token.claims


@dataclass(frozen=True)
class Granted:
    client: RegisteredClient
    body: dict[str, Any]


class AuthorizationServer:
    def __init__(self, database: Database, issuer: TokenIssuer, token_url: str, fetcher: JwksFetcher) -> None:
        self._database = database
        self._issuer = issuer
        self._assertion = SmartAssertionCheck(token_url)
        self._fetcher = fetcher

    async def token(self, form: dict[str, str]) -> Granted:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError(
                "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}, with a client_assertion"
            )
        assertion = form["client_assertion"]
        try:
            header, unverified = self._assertion.extract_assertion(assertion)
        except InvalidClientError as error:
            raise _invalid_client(error.description) from None
        if header.get("alg") not in ASSERTION_ALGS:
            raise _invalid_client(f"the assertion must be signed with {' or '.join(ASSERTION_ALGS)}")
        client_id = unverified.get("sub")
        if not isinstance(client_id, str) or unverified.get("iss") != client_id:
            raise _invalid_client("iss and sub must both be the client_id")
        async with self._database.read() as conn:
            client = await clients.find(conn, client_id)
        if client is None:
            raise _invalid_client("unknown client")
        if client.disabled:
            raise _invalid_client("the client is disabled", client_id)
        key_set = await self._key_set(client, header.get("kid"))
        try:
            claims = self._assertion.process_assertion_claims(assertion, key_set)
        except InvalidClientError as error:
            raise _invalid_client(error.description or "the assertion does not verify", client_id) from None
        now = time.time()
        if float(claims["exp"]) > now + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS:
            raise _invalid_client("the assertion's exp is more than 5 minutes ahead", client_id)
        granted = grantable(form.get("scope"), client.scopes)
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes is allowed to this client", 400, client_id)
        async with self._database.transaction() as conn:
            await self._claim_jti(conn, client_id, str(claims["jti"]), float(claims["exp"]))
        body = self._issuer.issue(client, " ".join(granted))
        return Granted(client, body)

    async def _key_set(self, client: RegisteredClient, kid: Any) -> KeySet:
        return await client_key_set(client, kid, self._fetcher)

    async def _claim_jti(self, conn: AsyncConnection, client_id: str, jti: str, exp: float) -> None:
        """Remember the assertion id until it expires; a second use, on any replica, is refused."""
        now = datetime.now(UTC)
        await conn.execute(delete(auth_assertions).where(auth_assertions.c.expires_at < now))
        expires = datetime.fromtimestamp(exp, UTC) + timedelta(seconds=CLOCK_SKEW_SECONDS)
        try:
            async with conn.begin_nested():
                await conn.execute(insert(auth_assertions).values(client_id=client_id, jti=jti, expires_at=expires))
        except IntegrityError:
            raise _invalid_client("the assertion was used before (jti replay)", client_id) from None
