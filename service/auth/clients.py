"""Registered SMART backend-services clients: their keys, allowed scopes and data boundary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest, Conflict, NotFound
from service.store.tables import auth_clients

from . import scopes as scope_rules
from .boundary import normalize_organization

KEY_TYPES = ("RSA", "EC")
JWKS_CACHE_SECONDS = 300.0
JWKS_REFETCH_AFTER_SECONDS = 10.0
"""An unknown kid refetches a cached JWKS URL (the client may have rotated), at most this often."""


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    program_id: str
    organization: str | None
    scopes: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    disabled: bool
    created_at: datetime

    # what authlib's token generator asks of a client
    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(scope_rules.grantable(scope, self.scopes))

    def public(self) -> dict[str, Any]:
        """The registration as the admin API shows it."""
        return {
            "client_id": self.client_id,
            "program_id": self.program_id,
            "organization": self.organization,
            "scopes": self.scopes,
            "jwks": self.jwks,
            "jwks_url": self.jwks_url,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
        }


def _row(row: Any) -> RegisteredClient:
    return RegisteredClient(
        row.client_id,
        row.program_id,
        row.organization,
        row.scopes,
        row.jwks,
        row.jwks_url,
        row.disabled,
        row.created_at,
    )


def import_jwks(jwks: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(cast(KeySetSerialization, jwks))


def check_public_jwks(jwks: Any) -> dict[str, Any]:
    """A client's JWKS: public RSA or EC keys, each with a kid."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise BadRequest('the JWKS must be a JSON object {"keys": [...]} with at least one key')
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES or not key.get("kid"):
            raise BadRequest("every JWKS key needs a kid and kty RSA or EC")
        if "d" in key:
            raise BadRequest("the JWKS holds a private key: register the public key only")
    try:
        import_jwks(jwks)
    except (JoseError, ValueError, TypeError):
        raise BadRequest("the JWKS does not hold valid keys") from None
    return jwks


async def add(
    conn: AsyncConnection,
    program_id: str,
    client_id: str,
    scopes: str,
    now: datetime,
    *,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    organization: str | None = None,
) -> RegisteredClient:
    if (jwks is None) == (jwks_url is None):
        raise BadRequest("give the client's keys as a JWKS or as a JWKS URL (one of the two)")
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
        raise BadRequest("the JWKS URL must be http(s)")
    try:
        allowed = scope_rules.valid_registration(scopes)
        organization = normalize_organization(organization) if organization else None
    except ValueError as error:
        raise BadRequest(str(error)) from None
    if organization is not None and scope_rules.ADMIN_SCOPE in allowed:
        raise BadRequest(
            f"an organisation's client cannot hold {scope_rules.ADMIN_SCOPE} (it could step outside its boundary)"
        )
    scope_text = " ".join(allowed)
    values = {
        "client_id": client_id,
        "program_id": program_id,
        "organization": organization,
        "scopes": scope_text,
        "jwks": check_public_jwks(jwks) if jwks is not None else None,
        "jwks_url": jwks_url,
        "disabled": False,
        "created_at": now,
        "updated_at": now,
    }
    try:
        async with conn.begin_nested():
            await conn.execute(insert(auth_clients).values(**values))
    except IntegrityError:
        raise Conflict("a client with that id is registered already") from None
    return RegisteredClient(client_id, program_id, organization, scope_text, jwks, jwks_url, False, now)


async def find(conn: AsyncConnection, client_id: str) -> RegisteredClient | None:
    row = (await conn.execute(select(auth_clients).where(auth_clients.c.client_id == client_id))).first()
    return _row(row) if row is not None else None


async def list_all(conn: AsyncConnection, program_id: str | None = None) -> list[RegisteredClient]:
    query = select(auth_clients).order_by(auth_clients.c.pk)
    if program_id is not None:
        query = query.where(auth_clients.c.program_id == program_id)
    return [_row(row) for row in await conn.execute(query)]


async def set_disabled(conn: AsyncConnection, client_id: str, disabled: bool, now: datetime) -> RegisteredClient:
    t = auth_clients.c
    result = await conn.execute(
        update(auth_clients).where(t.client_id == client_id).values(disabled=disabled, updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFound("no client with that id")
    found = await find(conn, client_id)
    assert found is not None
    return found


class JwksFetcher:
    """Clients' JWKS URLs, fetched with a timeout and cached; an unknown kid refetches (rate-limited)."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._timeout = timeout
        self._transport = transport
        self._cache: dict[str, tuple[float, KeySet, frozenset[str]]] = {}

    async def key_set(self, url: str, kid: str | None) -> KeySet:
        cached = self._cache.get(url)
        now = time.monotonic()
        if cached is not None:
            fetched_at, key_set, kids = cached
            fresh = now - fetched_at < JWKS_CACHE_SECONDS
            if fresh and (kid in kids or now - fetched_at < JWKS_REFETCH_AFTER_SECONDS):
                return key_set
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
            response = await http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            jwks = check_public_jwks(response.json())
        key_set = import_jwks(jwks)
        self._cache[url] = (now, key_set, frozenset(k["kid"] for k in jwks["keys"]))
        return key_set
