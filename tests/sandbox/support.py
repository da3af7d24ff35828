"""The sandbox in process for tests: an app, an httpx client on its ASGI transport, and helpers for
tokens (assertions signed with PyJWT, independent of the sandbox's authlib/joserfc)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from service.sandbox import ClientRegistration, Sandbox, SandboxConfig, create_sandbox_app, sandbox_of
from service.sandbox.control import SandboxAdmin
from tests.auth_support import ClientKey, assertion, rsa_key, token_form

ROOT = "http://sandbox.test"
ADMIN_SECRET = "test-admin-secret"
FHIR_JSON = "application/fhir+json"
ALL = "system/*.cruds"


def pem(key: ClientKey) -> bytes:
    data: bytes = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data


@dataclass
class Harness:
    app: FastAPI
    sandbox: Sandbox
    http: httpx.AsyncClient
    transport: httpx.ASGITransport
    admin: SandboxAdmin
    tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config

    @property
    def fhir(self) -> str:
        """The FHIR base path (below the root)."""
        return self.config.layout.fhir

    @property
    def token_url(self) -> str:
        return ROOT + self.config.layout.token

    def register(self, client_id: str = "peerlink", scopes: str = ALL, key: ClientKey | None = None) -> ClientKey:
        key = key or rsa_key()
        if self.sandbox.registry.get(client_id) is None:
            registration: dict[str, Any] = {"client_id": client_id, "scopes": scopes}
            if self.config.jwks_url_required:
                registration["jwks_url"] = f"https://keys.example/{key.kid}.json"
            else:
                registration["jwks"] = key.jwks
            self.sandbox.register_client(ClientRegistration.model_validate(registration))
        return key

    async def token_response(self, client_id: str, key: ClientKey, scope: str | None = None, **kwargs: Any):
        signed = assertion(key, client_id, self.token_url, **kwargs)
        return await self.http.post(self.config.layout.token, data=token_form(signed, scope))

    async def token(self, client_id: str = "peerlink", scopes: str = ALL, scope: str | None = None) -> str:
        cached = self.tokens.get((client_id, scope))
        if cached is None:
            key = self.register(client_id, scopes)
            response = await self.token_response(client_id, key, scope)
            assert response.status_code == 200, response.text
            cached = self.tokens[(client_id, scope)] = response.json()["access_token"]
        return cached

    async def headers(self, client_id: str = "peerlink", scopes: str = ALL, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(client_id, scopes, scope)}"}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**await self.headers(), **kwargs.pop("headers", {})}
        return await self.http.get(self.fhir + path, headers=headers, **kwargs)

    async def post(self, path: str, resource: Any, **kwargs: Any) -> httpx.Response:
        headers = {**await self.headers(), "Content-Type": FHIR_JSON, **kwargs.pop("headers", {})}
        return await self.http.post(self.fhir + path, json=resource, headers=headers, **kwargs)

    async def put(self, path: str, resource: Any, **kwargs: Any) -> httpx.Response:
        headers = {**await self.headers(), "Content-Type": FHIR_JSON, **kwargs.pop("headers", {})}
        return await self.http.put(self.fhir + path, json=resource, headers=headers, **kwargs)


def jwks_transport() -> httpx.MockTransport:
    """Serves https://keys.example/<kid>.json: the test keys' JWKS (for JWKS-URL registrations)."""
    from tests.auth_support import ec_key

    keys = {k.kid: k for k in (rsa_key(), rsa_key("other"), ec_key())}

    def handler(request: httpx.Request) -> httpx.Response:
        kid = Path(request.url.path).stem
        if request.url.host != "keys.example" or kid not in keys:
            return httpx.Response(404)
        return httpx.Response(200, json=keys[kid].jwks)

    return httpx.MockTransport(handler)


def build(keys_dir: Path, *, deficient: bool = False, **config: Any) -> Harness:
    """``deficient``: SandboxConfig.deficient() of the config (what the checker must flag)."""
    config.setdefault("admin_secret", ADMIN_SECRET)
    config.setdefault("keys_dir", keys_dir)
    config.setdefault("jwks_transport", jwks_transport())
    sandbox_config = SandboxConfig(**config)
    app = create_sandbox_app(sandbox_config.deficient() if deficient else sandbox_config)
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url=ROOT)
    return Harness(app, sandbox_of(app), http, transport, SandboxAdmin(http, ADMIN_SECRET))
