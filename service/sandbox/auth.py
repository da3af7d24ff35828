"""The sandbox's own SMART Backend Services authorization server, in memory.

The gateway's client authentication, run by the same code (``service.auth.assertion.authenticate``:
client_credentials with an RFC 7523 JWT assertion, iss = sub = the client id, aud = the token URL,
``exp`` at most 5 minutes ahead, a ``jti`` never seen before, a ``kid`` among the client's keys;
granted scopes = asked ∩ registered) over the sandbox's own storage hooks. Access tokens are the
gateway's RFC 9068 JWTs (its ``TokenIssuer``/``TokenVerifier`` over the sandbox's own signing keys),
or, for the epic-like personality, opaque random strings remembered here. Registrations, used jtis
and opaque tokens live in this object only: no state is shared with the gateway.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.auth.assertion import CLOCK_SKEW_SECONDS, SmartAssertionCheck, authenticate, keys_from
from service.auth.clients import JwksFetcher, RegisteredClient, check_public_jwks
from service.auth.keys import SigningKeys
from service.auth.scopes import Permissions, valid_registration
from service.auth.tokens import TokenIssuer, TokenVerifier
from service.domain.errors import BadRequest, Conflict, Unauthorized

from .config import ClientRegistration, SandboxConfig

PROGRAM = "sandbox-ehr"
"""What the gateway's client record calls the tenant; the sandbox has one."""
SCOPES_SUPPORTED = ["system/*.cruds", "system/*.rs", "system/*.read", "system/*.write"]


@dataclass(frozen=True)
class Caller:
    """Who a FHIR request acts for, and what its token's scopes allow."""

    client_id: str
    permissions: Permissions


@dataclass(frozen=True)
class _OpaqueToken:
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float


class ClientRegistry:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._clients: dict[str, RegisteredClient] = {}

    def add(self, registration: ClientRegistration) -> RegisteredClient:
        if registration.client_id in self._clients:
            raise Conflict("a client with that id is registered already")
        if self._config.jwks_url_required and registration.jwks is not None:
            raise BadRequest("this EHR accepts only a JWK Set URL (jwks_url), not an inline JWKS")
        if registration.jwks_url is not None and not registration.jwks_url.startswith(("https://", "http://")):
            raise BadRequest("the JWKS URL must be http(s)")
        try:
            scopes = " ".join(valid_registration(registration.scopes))
        except ValueError as error:
            raise BadRequest(str(error)) from None
        jwks = check_public_jwks(registration.jwks) if registration.jwks is not None else None
        client = RegisteredClient(
            client_id=registration.client_id,
            program_id=PROGRAM,
            organization=None,
            scopes=scopes,
            jwks=jwks,
            jwks_url=registration.jwks_url,
            disabled=False,
            created_at=datetime.now(UTC),
        )
        self._clients[client.client_id] = client
        return client

    def get(self, client_id: str) -> RegisteredClient | None:
        return self._clients.get(client_id)

    def all(self) -> list[RegisteredClient]:
        return list(self._clients.values())


class SandboxAuth:
    def __init__(self, config: SandboxConfig, keys: SigningKeys, registry: ClientRegistry) -> None:
        self._config = config
        self._keys = keys
        self.registry = registry
        self.token_seconds = config.token_seconds
        self._client_keys = keys_from(JwksFetcher(config.http_timeout, config.jwks_transport))
        self._jtis: dict[tuple[str, str], float] = {}
        self._opaque: dict[str, _OpaqueToken] = {}
        self._issuers: dict[str, TokenIssuer] = {}
        self._verifiers: dict[str, TokenVerifier] = {}
        self.tokens_issued = 0

    # --- discovery ---------------------------------------------------------------------------------------
    def smart_configuration(self, root: str) -> dict[str, Any]:
        layout = self._config.layout
        return {
            "issuer": root,
            "jwks_uri": root + layout.jwks,
            "token_endpoint": root + layout.token,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(self._config.assertion_algs),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["token"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }

    # --- the token endpoint ------------------------------------------------------------------------------
    async def token(self, form: dict[str, str], root: str) -> dict[str, Any]:
        """The token response for a client_credentials form; raises OAuthError."""
        checker = SmartAssertionCheck(root + self._config.layout.token, self._config.assertion_algs)
        authenticated = await authenticate(
            form, checker, find_client=self._find, client_keys=self._client_keys, claim_jti=self._claim_jti
        )
        self.tokens_issued += 1
        client, granted = authenticated.client, authenticated.granted
        if self._config.opaque_tokens:
            return self._opaque_token(client.client_id, granted, time.time())
        return self._issuer(root).issue(client, " ".join(granted))

    async def _find(self, client_id: str) -> RegisteredClient | None:
        return self.registry.get(client_id)

    async def _claim_jti(self, client_id: str, jti: str, exp: float) -> bool:
        """Remember the assertion id until it has expired (plus the skew); a second use is refused."""
        now = time.time()
        self._jtis = {key: until for key, until in self._jtis.items() if until >= now}
        if (client_id, jti) in self._jtis:
            return False
        self._jtis[(client_id, jti)] = exp + CLOCK_SKEW_SECONDS
        return True

    def _opaque_token(self, client_id: str, granted: list[str], now: float) -> dict[str, Any]:
        self._opaque = {token: held for token, held in self._opaque.items() if held.expires_at > now}
        token = secrets.token_urlsafe(32)
        self._opaque[token] = _OpaqueToken(client_id, tuple(granted), now + self.token_seconds)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_seconds,
            "scope": " ".join(granted),
        }

    def _issuer(self, root: str) -> TokenIssuer:
        issuer = self._issuers.get(root)
        if issuer is None:
            issuer = self._issuers[root] = TokenIssuer(self._keys, root, root, self.token_seconds)
        return issuer

    # --- the resource server -----------------------------------------------------------------------------
    async def caller(self, authorization: str | None, root: str) -> Caller:
        """The caller of a FHIR request from its ``Authorization: Bearer`` header; raises Unauthorized."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("this FHIR server needs Authorization: Bearer <access token>")
        if self._config.opaque_tokens:
            held = self._opaque.get(token)
            if held is None or held.expires_at <= time.time():
                raise Unauthorized("the bearer token is invalid or expired")
            return Caller(held.client_id, Permissions.of(held.scopes))
        verifier = self._verifiers.get(root)
        if verifier is None:
            verifier = self._verifiers[root] = TokenVerifier(self._keys, root, root)
        verified = await verifier.verify(token)
        return Caller(verified.client_id, Permissions.of(verified.scopes))
