"""The security services one gateway process holds, built from the settings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.settings import Settings
from service.store import Database

from . import clients
from .clients import JwksFetcher, RegisteredClient
from .keys import SigningKeys
from .server import AuthorizationServer
from .tokens import TokenIssuer, TokenVerifier

ACCESS_CACHE_SIZE = 10_000
CLIENT_CACHE_SECONDS = 5.0
"""How long a registration is trusted without a re-read: disabling a client stops its tokens within this."""


@dataclass
class Security:
    settings: Settings
    database: Database
    keys: SigningKeys
    issuer: TokenIssuer
    verifier: TokenVerifier
    server: AuthorizationServer
    _clients: dict[str, tuple[float, RegisteredClient | None]] = field(default_factory=dict)
    access_cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    """bearer token -> (monotonic deadline, the request's Access): the per-request check is one lookup."""
    _reading: dict[str, asyncio.Future[RegisteredClient | None]] = field(default_factory=dict)
    _forgotten: int = 0

    def remember_access(self, token: str, until: float, access: Any) -> None:
        if len(self.access_cache) >= ACCESS_CACHE_SIZE:
            now = time.monotonic()
            self.access_cache = {t: v for t, v in self.access_cache.items() if v[0] > now}
            if len(self.access_cache) >= ACCESS_CACHE_SIZE:
                self.access_cache.clear()
        self.access_cache[token] = (until, access)

    @property
    def token_url(self) -> str:
        return f"{self.settings.base_url}/auth/token"

    def forget(self, client_id: str) -> None:
        self._forgotten += 1  # a read under way when the registration changed is not remembered
        self._reading.pop(client_id, None)
        self._clients.pop(client_id, None)
        self.access_cache = {t: v for t, v in self.access_cache.items() if v[1].client_id != client_id}

    async def client(self, client_id: str) -> RegisteredClient | None:
        """The registration, re-read at most CLIENT_CACHE_SECONDS after the last read. Concurrent
        requests of a client whose entry is due share one read (not one each, all at the same moment)."""
        cached = self._clients.get(client_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._reading.get(client_id)
        if pending is None:
            pending = self._reading[client_id] = asyncio.ensure_future(self._read_client(client_id))
            pending.add_done_callback(lambda done: self._done_reading(client_id, done))
        return await asyncio.shield(pending)

    def _done_reading(self, client_id: str, done: asyncio.Future[RegisteredClient | None]) -> None:
        if self._reading.get(client_id) is done:
            del self._reading[client_id]
        if not done.cancelled():
            done.exception()  # retrieved: a failed read fails its requests, not the loop's log

    async def _read_client(self, client_id: str) -> RegisteredClient | None:
        forgotten = self._forgotten
        async with self.database.read() as conn:
            found = await clients.find(conn, client_id)
        if forgotten == self._forgotten:
            self._clients[client_id] = (time.monotonic() + CLIENT_CACHE_SECONDS, found)
        return found


def build(settings: Settings, database: Database, transport: httpx.AsyncBaseTransport | None = None) -> Security:
    """``transport`` carries outbound fetches (client and issuer JWKS URLs); tests put a fake under it."""
    keys = SigningKeys(settings.keys_dir)
    keys.ensure()
    base = settings.base_url
    issuer = TokenIssuer(keys, base, base, settings.access_token_seconds)
    verifier = TokenVerifier(
        keys,
        base,
        base,
        external_issuer=settings.auth_external_issuer,
        external_jwks_url=settings.auth_external_jwks_url,
        external_audience=settings.auth_external_audience,
        timeout=settings.http_timeout_seconds,
        transport=transport,
    )
    fetcher = JwksFetcher(settings.http_timeout_seconds, transport)
    server = AuthorizationServer(database, issuer, f"{base}/auth/token", fetcher)
    return Security(settings, database, keys, issuer, verifier, server)
