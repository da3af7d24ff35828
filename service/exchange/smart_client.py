"""A SMART Backend Services client for one EHR: discovery, a cached access token, one refresh and
retry on 401. The HTTP transport is given, so tests put respx or an in-process sandbox under it."""

from __future__ import annotations

import time
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError

from service.auth.backend_client import PrivateKey, fetch_token

from .connections import EhrConnection

TOKEN_MARGIN_SECONDS = 30
"""A token is renewed this long before it expires."""
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
FHIR_JSON = "application/fhir+json"


class TokenFailure(Exception):
    """No access token could be obtained (discovery or the token endpoint failed)."""


class SmartClient:
    def __init__(
        self,
        connection: EhrConnection,
        key: PrivateKey,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.connection = connection
        self.base = connection.base_url.rstrip("/")
        self._key = key
        self._transport = transport
        self.http = httpx.AsyncClient(
            transport=transport, timeout=timeout, headers={"Accept": FHIR_JSON}, follow_redirects=False
        )
        self._token: tuple[str, float] | None = None
        self._token_url: str | None = None
        self._capabilities: dict[str, Any] | None = None
        self.token_failures = 0
        self.granted_scopes: str | None = None
        """The ``scope`` of the last token answer (None: the EHR did not say, so what was asked)."""

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- discovery and tokens ----------------------------------------------------------------------
    async def token_url(self) -> str:
        """From .well-known/smart-configuration, else the CapabilityStatement's oauth-uris extension."""
        if self._token_url is not None:
            return self._token_url
        try:
            response = await self.http.get(f"{self.base}/.well-known/smart-configuration")
            if response.status_code == 200:
                url = response.json().get("token_endpoint")
                if isinstance(url, str) and url:
                    self._token_url = url
                    return url
        except (httpx.HTTPError, ValueError):
            pass
        try:
            statement = await self.capabilities()
        except (httpx.HTTPError, ValueError) as error:
            raise TokenFailure(f"SMART discovery failed: {type(error).__name__}") from None
        for rest in statement.get("rest", []):
            for extension in (rest.get("security") or {}).get("extension", []):
                if extension.get("url") == OAUTH_URIS:
                    for uri in extension.get("extension", []):
                        if uri.get("url") == "token" and uri.get("valueUri"):
                            self._token_url = str(uri["valueUri"])
                            return self._token_url
        raise TokenFailure("the EHR publishes no token endpoint (no SMART configuration, no oauth-uris)")

    async def access_token(self) -> str:
        if self._token is not None and self._token[1] > time.time() + TOKEN_MARGIN_SECONDS:
            return self._token[0]
        url = await self.token_url()
        try:
            body = await fetch_token(
                url,
                self.connection.client_id,
                self._key,
                alg=self.connection.alg,
                scope=self.connection.scopes,
                transport=self._transport,
            )
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as error:
            self.token_failures += 1
            detail = getattr(error, "error", None) or type(error).__name__
            raise TokenFailure(f"the token endpoint refused or failed: {detail}") from None
        granted = body.get("scope")
        self.granted_scopes = granted if isinstance(granted, str) else None
        expires_in = float(body.get("expires_in") or 300)
        self._token = (str(body["access_token"]), time.time() + expires_in)
        return self._token[0]

    def forget_token(self) -> None:
        self._token = None

    # --- FHIR ----------------------------------------------------------------------------------------
    async def capabilities(self) -> dict[str, Any]:
        if self._capabilities is None:
            response = await self.http.get(f"{self.base}/metadata")
            response.raise_for_status()
            statement: dict[str, Any] = response.json()
            self._capabilities = statement
        return self._capabilities

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """An authorized FHIR request; on 401 the token is renewed once and the request sent again."""
        if url.startswith(("http://", "https://")):
            target = url
        else:
            target = f"{self.base}/{url.lstrip('/')}" if url.strip("/") else self.base  # POST [base]: a transaction
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            headers["Authorization"] = f"Bearer {await self.access_token()}"
            response = await self.http.request(method, target, headers=headers, **kwargs)
            if response.status_code != 401 or attempt == 2:
                return response
            self.forget_token()
        raise AssertionError("unreachable")
