"""OpenID Connect sign-in (optional): the authorization code flow with PKCE (S256), state and nonce,
through authlib's OAuth 2 client, against the issuer in PEERLINK_CONSOLE_OIDC_ISSUER (its discovery
document names the endpoints). The id_token is verified against the issuer's JWKS (joserfc): its
signature, issuer, audience, expiry and nonce. The person is matched to an existing console account
by the stored OIDC subject, else by a verified email (the subject is then stored); nobody is created.
"""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from fastapi import APIRouter, Request
from fastapi.responses import Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import write
from service.settings import Settings
from service.store import Database
from service.store.tables import console_oidc_states, console_users

from . import accounts, sessions
from .audit import record
from .security import ConsoleRefused
from .signin import FAILED, sign_in_page, signed_in_response
from .web import HOME, redirect, safe_next

with warnings.catch_warnings():  # authlib 1.9 nudges towards httpx2; httpx is the project's client
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

router = APIRouter(prefix="/oidc")
STATE_MINUTES = 10
"""How long a sign-in begun at the issuer may take to come back."""
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class OidcFailure(Exception):
    """The issuer's answer does not sign anyone in (the reason is audited, never shown in full)."""


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not (settings.console_oidc_issuer and settings.console_oidc_client_id):
        raise ConsoleRefused(404, "OpenID Connect sign-in is not configured")
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _redirect_uri(settings: Settings) -> str:
    return f"{settings.base_url}/console/oidc/callback"


def _client(request: Request, settings: Settings) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=settings.console_oidc_client_id,
        client_secret=settings.console_oidc_client_secret,
        scope=settings.console_oidc_scopes,
        redirect_uri=_redirect_uri(settings),
        code_challenge_method="S256",
        transport=request.app.state.outbound,
        timeout=settings.http_timeout_seconds,
    )


async def _discovery(http: AsyncOAuth2Client, issuer: str) -> dict[str, Any]:
    answer = await http.request("GET", f"{issuer.rstrip('/')}/.well-known/openid-configuration", withhold_token=True)
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    if document.get("issuer") != issuer:
        raise OidcFailure("the discovery document names another issuer")
    return document


@router.get("/start")
async def start(request: Request, next: str = HOME) -> Response:
    """Send the browser to the issuer, with a fresh state, nonce and PKCE verifier kept here."""
    settings = _settings(request)
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    async with _client(request, settings) as client:
        try:
            document = await _discovery(client, settings.console_oidc_issuer or "")
        except (httpx.HTTPError, ValueError, OidcFailure):
            raise ConsoleRefused(502, "the identity provider cannot be reached; sign in with a password") from None
        url, _ = client.create_authorization_url(
            document["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
        )
    now = datetime.now(UTC)
    row = {"state_hash": sessions.digest(state), "nonce": nonce, "code_verifier": verifier}
    async with _database(request).transaction() as conn:
        await conn.execute(
            delete(console_oidc_states).where(console_oidc_states.c.created_at < now - timedelta(minutes=STATE_MINUTES))
        )
        await conn.execute(insert(console_oidc_states).values(**row, next_url=safe_next(next[:500]), created_at=now))
    return redirect(url)


async def _take_state(conn: AsyncConnection, state: str, now: datetime) -> Any:
    """The sign-in the state names (used once: deleted), if begun less than STATE_MINUTES ago."""
    s = console_oidc_states.c
    row = (await conn.execute(select(console_oidc_states).where(s.state_hash == sessions.digest(state)))).first()
    if row is not None:
        await conn.execute(delete(console_oidc_states).where(s.pk == row.pk))
    if row is None or now - row.created_at > timedelta(minutes=STATE_MINUTES):
        return None
    return row


async def _verified_claims(request: Request, settings: Settings, code: str, pending: Any) -> dict[str, Any]:
    issuer = settings.console_oidc_issuer or ""
    async with _client(request, settings) as client:
        try:
            document = await _discovery(client, issuer)
            token = await client.fetch_token(
                document["token_endpoint"],
                code=code,
                code_verifier=pending.code_verifier,
                grant_type="authorization_code",
            )
            keys = (await client.request("GET", document["jwks_uri"], withhold_token=True)).raise_for_status().json()
        except (httpx.HTTPError, ValueError, KeyError, AuthlibBaseError) as error:
            raise OidcFailure(f"the issuer's token exchange failed ({type(error).__name__})") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise OidcFailure("the issuer sent no id_token")
    try:
        decoded = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=ALGORITHMS)
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": settings.console_oidc_client_id or ""},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": pending.nonce},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as error:
        raise OidcFailure(f"the id_token did not verify ({type(error).__name__})") from None
    claims: dict[str, Any] = decoded.claims
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != settings.console_oidc_client_id:
        raise OidcFailure("the id_token was issued to another party (azp)")
    return claims


async def _match(conn: AsyncConnection, claims: dict[str, Any]) -> accounts.Account | None:
    """The account of the stored subject, else of the verified email (the subject is stored then)."""
    u = console_users.c
    subject = str(claims["sub"])
    row = (await conn.execute(select(u.username).where(u.oidc_subject == subject))).first()
    if row is not None:
        return await accounts.by_username(conn, row.username)
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return None
    row = (await conn.execute(select(u.username, u.oidc_subject).where(u.email == email.strip().lower()))).first()
    if row is None or row.oidc_subject is not None:  # bound to another subject: not this person
        return None
    await conn.execute(update(console_users).where(u.username == row.username).values(oidc_subject=subject))
    return await accounts.by_username(conn, row.username)


@router.get("/callback")
async def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    """The issuer sends the browser back here: check the state, exchange the code, verify the id_token,
    find the account, start a session."""
    settings = _settings(request)
    now = datetime.now(UTC)
    async with _database(request).transaction() as conn:
        pending = await _take_state(conn, state[:200], now) if state else None
    if pending is None:
        raise ConsoleRefused(403, "this sign-in was not begun here, was used already, or took too long; start again")
    reason, account, claims = "", None, {}
    if error or not code:
        reason = f"issuer: {(error or 'no code')[:60]}"
    else:
        try:
            claims = await _verified_claims(request, settings, code[:2000], pending)
        except OidcFailure as failure:
            reason = str(failure)
    async with _database(request).transaction() as conn:
        if not reason:
            account = await _match(conn, claims)
            if account is None:
                reason = "no console account for this person"
            elif account.disabled:
                reason = "disabled"
            elif account.locked_until is not None and account.locked_until > now:
                reason = "locked"
        if reason or account is None:
            detail = {"method": "oidc", "reason": reason, **({"user": account.id} if account else {})}
            name = account.username if account else None
            await write(
                conn,
                record(
                    request,
                    None,
                    "sign-in-failed",
                    action="E",
                    outcome="4",
                    detail=detail,
                    username=name,
                    program_id=account.program_id if account else None,
                ),
            )
            failed = True
        else:
            await accounts.signed_in(conn, account, now)
            value = await sessions.start(conn, account.pk, "oidc", now, settings)
            detail = {"user": account.id, "role": account.role.value, "method": "oidc"}
            await write(
                conn,
                record(
                    request,
                    None,
                    "sign-in",
                    action="E",
                    detail=detail,
                    username=account.username,
                    program_id=account.program_id,
                ),
            )
            failed = False
    if failed:
        return sign_in_page(request, next_url=pending.next_url, error=FAILED, status=401)
    return signed_in_response(request, value, pending.next_url)
