"""SMART Backend Services client authentication, shared by every token endpoint we run (the gateway's
and the sandbox EHR's): an RFC 7523 JWT assertion checked by authlib's ``JWTBearerClientAssertion``
(iss = sub = the client id, aud = the token URL, RS384/ES384, a ``kid`` among the client's registered
keys, ``exp`` at most 5 minutes ahead, one minute of clock skew, a ``jti`` never seen before) and the
client_credentials grant's scopes. Where clients and used jtis are kept is the caller's: it passes
the look-ups as callables.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from service.domain.errors import BadRequest

from .clients import JwksFetcher, RegisteredClient, import_jwks
from .scopes import grantable

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS384", "ES384")
MAX_ASSERTION_SECONDS = 300
CLOCK_SKEW_SECONDS = 60

FindClient = Callable[[str], Awaitable[RegisteredClient | None]]
"""The registered client of a client id (None: unknown)."""
ClaimJti = Callable[[str, str, float], Awaitable[bool]]
"""Record (client id, jti) as used until ``exp`` (epoch seconds) plus the skew; False if used before."""
ClientKeys = Callable[[RegisteredClient, Any], Awaitable[KeySet]]
"""The client's keys that hold the assertion header's kid (raises OAuthError otherwise)."""


class OAuthError(Exception):
    """An RFC 6749 section 5.2 error: answered as {"error", "error_description"}."""

    def __init__(self, error: str, description: str, status: int = 400, client_id: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.client_id = client_id


def invalid_client(description: str, client_id: str | None = None) -> OAuthError:
    return OAuthError("invalid_client", description, 401, client_id)


async def client_key_set(client: RegisteredClient, kid: Any, fetcher: JwksFetcher) -> KeySet:
    """The client's registered keys (inline, or fetched from its JWKS URL), holding the assertion's kid."""
    if not isinstance(kid, str) or not kid:
        raise invalid_client("the assertion header must name the signing key (kid)", client.client_id)
    if client.jwks is not None:
        key_set = import_jwks(client.jwks)
    else:
        assert client.jwks_url is not None
        try:
            key_set = await fetcher.key_set(client.jwks_url, kid)
        except (httpx.HTTPError, ValueError, JoseError, BadRequest) as error:
            raise invalid_client("the client's JWKS URL could not be fetched", client.client_id) from error
    if kid not in {key.kid for key in key_set.keys}:
        raise invalid_client("the assertion's kid is not among the client's registered keys", client.client_id)
    return key_set


class SmartAssertionCheck(JWTBearerClientAssertion):  # type: ignore[misc]
    """authlib's RFC 7523 checks (iss = sub, aud, exp, jti present), with SMART's algorithms (or a
    narrower list); the jti is then claimed through the caller's hook."""

    def __init__(self, token_url: str, algorithms: tuple[str, ...] = ASSERTION_ALGS) -> None:
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW_SECONDS)
        self._token_url = token_url
        self.algorithms = tuple(algorithms)

    def get_audiences(self) -> list[str]:
        return [self._token_url]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        return isinstance(jti, str) and 0 < len(jti) <= 255

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(self.algorithms))
        except JoseError as error:
            raise InvalidClientError(description=error.description or "the assertion does not verify") from error
        self.verify_claims(token.claims)
        return token.claims


@dataclass(frozen=True)
class Authenticated:
    """A client that proved who it is, and the scopes it may have of those it asked for."""

    client: RegisteredClient
    granted: list[str]


def keys_from(fetcher: JwksFetcher) -> ClientKeys:
    """The usual key look-up: the registration's inline JWKS, or its JWKS URL through ``fetcher``."""

    async def keys(client: RegisteredClient, kid: Any) -> KeySet:
        return await client_key_set(client, kid, fetcher)

    return keys


async def authenticate(
    form: dict[str, str],
    checker: SmartAssertionCheck,
    *,
    find_client: FindClient,
    client_keys: ClientKeys,
    claim_jti: ClaimJti,
    now: Callable[[], float] = time.time,
) -> Authenticated:
    """The client of a client_credentials token request, authenticated by its JWT assertion, with the
    scopes it is granted; raises OAuthError (RFC 6749 section 5.2) for anything else."""
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}, with a client_assertion")
    assertion = form["client_assertion"]
    try:
        header, unverified = checker.extract_assertion(assertion)
    except InvalidClientError as error:
        raise invalid_client(error.description) from None
    algorithms = checker.algorithms
    if header.get("alg") not in algorithms:
        raise invalid_client(f"the assertion must be signed with {' or '.join(algorithms)}")
    client_id = unverified.get("sub")
    if not isinstance(client_id, str) or unverified.get("iss") != client_id:
        raise invalid_client("iss and sub must both be the client_id")
    client = await find_client(client_id)
    if client is None:
        raise invalid_client("unknown client")
    if client.disabled:
        raise invalid_client("the client is disabled", client_id)
    key_set = await client_keys(client, header.get("kid"))
    try:
        claims = checker.process_assertion_claims(assertion, key_set)
    except InvalidClientError as error:
        raise invalid_client(error.description or "the assertion does not verify", client_id) from None
    if float(claims["exp"]) > now() + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS:
        raise invalid_client("the assertion's exp is more than 5 minutes ahead", client_id)
    granted = grantable(form.get("scope"), client.scopes)
    if not granted:
        raise OAuthError("invalid_scope", "none of the requested scopes is allowed to this client", 400, client_id)
    if not await claim_jti(client_id, str(claims["jti"]), float(claims["exp"])):
        raise invalid_client("the assertion was used before (jti replay)", client_id)
    return Authenticated(client, granted)
