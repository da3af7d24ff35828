"""The gateway's token endpoint: the client_credentials grant for its registered clients (in the
database), with the shared SMART client-assertion check (``assertion``); used jtis are kept in the
database, so a replay is refused on any replica."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from service.store import Database
from service.store.tables import auth_assertions

from . import clients
from .assertion import (
    ASSERTION_ALGS,
    ASSERTION_TYPE,
    CLOCK_SKEW_SECONDS,
    MAX_ASSERTION_SECONDS,
    OAuthError,
    SmartAssertionCheck,
    authenticate,
    client_key_set,
    keys_from,
)
from .clients import JwksFetcher, RegisteredClient
from .tokens import TokenIssuer

__all__ = [
    "ASSERTION_ALGS",
    "ASSERTION_TYPE",
    "CLOCK_SKEW_SECONDS",
    "MAX_ASSERTION_SECONDS",
    "AuthorizationServer",
    "Granted",
    "OAuthError",
    "SmartAssertionCheck",
    "client_key_set",
]


@dataclass(frozen=True)
class Granted:
    client: RegisteredClient
    body: dict[str, Any]


class AuthorizationServer:
    def __init__(self, database: Database, issuer: TokenIssuer, token_url: str, fetcher: JwksFetcher) -> None:
        self._database = database
        self._issuer = issuer
        self._assertion = SmartAssertionCheck(token_url)
        self._keys = keys_from(fetcher)

    async def token(self, form: dict[str, str]) -> Granted:
        authenticated = await authenticate(
            form, self._assertion, find_client=self._find, client_keys=self._keys, claim_jti=self._claim_jti
        )
        body = self._issuer.issue(authenticated.client, " ".join(authenticated.granted))
        return Granted(authenticated.client, body)

    async def _find(self, client_id: str) -> RegisteredClient | None:
        async with self._database.read() as conn:
            return await clients.find(conn, client_id)

    async def _claim_jti(self, client_id: str, jti: str, exp: float) -> bool:
        """Remember the assertion id until it expires; a second use, on any replica, is refused."""
        now = datetime.now(UTC)
        expires = datetime.fromtimestamp(exp, UTC) + timedelta(seconds=CLOCK_SKEW_SECONDS)
        async with self._database.transaction() as conn:
            await conn.execute(delete(auth_assertions).where(auth_assertions.c.expires_at < now))
            try:
                async with conn.begin_nested():
                    await conn.execute(insert(auth_assertions).values(client_id=client_id, jti=jti, expires_at=expires))
            except IntegrityError:
                return False
        return True
